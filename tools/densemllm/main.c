/* main.c: dispatches "densemllm COMMAND ..." to the subcommand table. */
#include "cli.h"

#include <string.h>

static const cli_command *const commands[] = {
    &cli_eval_command, &cli_bench_command,
    &cli_segment_command, &cli_depth_command, &cli_refseg_command, &cli_openseg_command, &cli_ask_command,
    &cli_ground_command,  &cli_detect_command, &cli_features_command, &cli_info_command, &cli_readout_command};;
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void print_usage(FILE *out) {
    fprintf(out, "usage: densemllm COMMAND [options]   (densemllm COMMAND --help for details)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("densemllm %s\n", dmllm_version_string());
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (!strcmp(argv[1], commands[i]->name)) return commands[i]->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "densemllm: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return 2;
}
