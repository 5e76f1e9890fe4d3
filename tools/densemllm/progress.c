/*
 * progress.c: what the densemllm commands show on stderr while they run. On a terminal, live bars
 * redrawn in place: one for the batch (inputs done of all, rate, ETA, the current input) and one
 * beneath it for the library's current stage ("load", "vision", "llm", "generate"), so a batch of
 * any size keeps two lines on the screen. Elsewhere (a log file, a pipe) nothing, or with
 * DMLLM_PROGRESS=1 one plain line per finished input. --quiet and DMLLM_PROGRESS=0 show nothing.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

enum progress_mode { PROGRESS_OFF, PROGRESS_PLAIN, PROGRESS_LIVE };

static struct {
    enum progress_mode mode;
    int total;             /* inputs of the batch; 0 before a batch starts (model loading) */
    int finished;          /* inputs done, failed or skipped */
    int processed;         /* of those, the ones run (skipped ones take no time: not in the rate) */
    double start, last_draw;
    char current[256];     /* the input being run */
    char stage[32];        /* the library's stage, "" for none */
    int stage_done, stage_total;
    int lines_drawn;       /* live lines on the screen; the cursor is at the end of the last one */
} bar;

void cli_progress_init(const cli_common *common) {
    const char *forced = getenv("DMLLM_PROGRESS");
    memset(&bar, 0, sizeof bar);
    if (common->quiet || (forced && *forced == '0')) bar.mode = PROGRESS_OFF;
    else if (isatty(STDERR_FILENO)) bar.mode = PROGRESS_LIVE;
    else bar.mode = forced && *forced == '1' ? PROGRESS_PLAIN : PROGRESS_OFF;
}

int cli_progress_live(void) { return bar.mode == PROGRESS_LIVE; }

/* "1:02:03" or "2:03"; "?" before anything was measured. */
static void format_duration(char *out, size_t size, double seconds) {
    if (!(seconds >= 0.0) || seconds > 1e7) {
        snprintf(out, size, "?");
        return;
    }
    const long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(out, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(out, size, "%ld:%02ld", s / 60, s % 60);
}

/* "[#####.....]" of width cells for done of total, into out (size > width + 2). */
static void format_cells(char *out, int width, int done, int total) {
    const int filled = total > 0 ? (int)((long long)width * (done < total ? done : total) / total) : 0;
    out[0] = '[';
    for (int i = 0; i < width; i++) out[1 + i] = i < filled ? '#' : '.';
    out[width + 1] = ']';
    out[width + 2] = '\0';
}

/* The batch bar's line: "[###...] 3/10  0.42/s  ETA 0:17  photo.png" (no newline). */
static void format_batch(char *out, size_t size, int finished, int processed, int total,
                               double elapsed, const char *current) {
    char cells[40], eta[32];
    format_cells(cells, 24, finished, total);
    const double rate = processed > 0 && elapsed > 0.0 ? processed / elapsed : 0.0;
    format_duration(eta, sizeof eta, rate > 0.0 ? (total - finished) / rate : -1.0);
    snprintf(out, size, "%s %d/%d  %.2f/s  ETA %s  %s", cells, finished, total, rate, eta,
             current ? current : "");
}

/* The stage bar's line: "  llm      [######..] 12/24". */
static void format_stage(char *out, size_t size, const char *stage, int done, int total) {
    char cells[40];
    format_cells(cells, 24, done, total);
    snprintf(out, size, "  %-8s %s %d/%d", stage, cells, done, total);
}

/* Columns of the terminal: a live line must not wrap, or moving up would miss part of it. */
static int terminal_columns(void) {
    struct winsize ws;
    return ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col : 80;
}

/* Back to the start of the first live line, leaving the cursor there. */
static void rewind_lines(void) {
    fputc('\r', stderr);
    for (int i = 1; i < bar.lines_drawn; i++) fputs("\033[A", stderr);
}

static void draw(void) {
    char lines[2][512];
    int n = 0;
    if (bar.total > 0)
        format_batch(lines[n++], sizeof lines[0], bar.finished, bar.processed,
                                  bar.total, cli_now_seconds() - bar.start, bar.current);
    if (bar.stage[0])
        format_stage(lines[n++], sizeof lines[0], bar.stage, bar.stage_done,
                                  bar.stage_total);
    const int columns = terminal_columns() - 1;
    rewind_lines();
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%s\033[K%.*s", i ? "\n" : "", columns, lines[i]);
    if (n < bar.lines_drawn) fputs("\033[J", stderr); /* fewer lines than before: clear the rest */
    bar.lines_drawn = n;
    fflush(stderr);
    bar.last_draw = cli_now_seconds();
}

void cli_progress_clear(void) {
    if (bar.mode != PROGRESS_LIVE || bar.lines_drawn == 0) return;
    rewind_lines();
    fputs("\033[J", stderr);
    fflush(stderr);
    bar.lines_drawn = 0;
}

int cli_progress_stage(const char *stage, int done, int total, void *user_data) {
    (void)user_data;
    if (bar.mode != PROGRESS_LIVE || total <= 0) return 0;
    const int changed = strcmp(bar.stage, stage) != 0;
    snprintf(bar.stage, sizeof bar.stage, "%s", stage);
    bar.stage_done = done;
    bar.stage_total = total;
    /* at most ten redraws a second within a stage: the tiny model reports thousands */
    if (changed || done >= total || cli_now_seconds() - bar.last_draw >= 0.1) draw();
    return 0;
}

void cli_progress_batch(int total) {
    bar.total = total;
    bar.finished = bar.processed = 0;
    bar.start = cli_now_seconds();
    bar.stage[0] = '\0';
}

void cli_progress_item(const char *current) {
    snprintf(bar.current, sizeof bar.current, "%s", current);
    bar.stage[0] = '\0';
    if (bar.mode == PROGRESS_LIVE) draw();
}

void cli_progress_finished(const char *input, int ran, int failed) {
    bar.finished++;
    bar.processed += ran;
    if (bar.mode == PROGRESS_LIVE) {
        bar.stage[0] = '\0';
        draw();
    } else if (bar.mode == PROGRESS_PLAIN && ran) {
        char line[512];
        format_batch(line, sizeof line, bar.finished, bar.processed, bar.total,
                                  cli_now_seconds() - bar.start, input);
        fprintf(stderr, "%s%s\n", line, failed ? "  failed" : "");
        fflush(stderr);
    }
}

void cli_progress_end(void) {
    cli_progress_clear();
    bar.total = 0;
    bar.stage[0] = '\0';
}
