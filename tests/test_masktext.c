/*
 * test_masktext.c: the official dense text (masktext.c): the exact string of a hand-computed map,
 * round trips of random maps (run count checked against an independent count of value changes),
 * the spellings the official demo's parser accepts (spaces inside runs, commas between, the
 * expanded "v,v,v" form, "<depth>", names like "<FG>"), a batch of malformed texts that must fail
 * with DMLLM_ERR_FORMAT and a byte offset, and truncation and mutation sweeps that must never crash.
 */
#include "masktext.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static void test_hand_example(void) {
    /* 4x2 map   0 0 1 1      row-major runs: 0 x2, 1 x3, 2 x3
     *           1 2 2 2 */
    static const uint16_t labels[8] = {0, 0, 1, 1, 1, 2, 2, 2};
    static const char *const names[3] = {"sky", "tree", "road"};
    char *text = NULL;
    CHECK_OK(dmllm_mask_text_write(labels, 4, 2, names, 3, &text));
    CHECK_MSG(text && strcmp(text, "<ref>sky</ref><ref>tree</ref><ref>road</ref><mask>(0,2)(1,3)(2,3)</mask>") == 0,
              "got %s", text ? text : "(null)");
    dmllm_mask_text_result *result = NULL;
    CHECK_OK(dmllm_mask_text_parse(text, 4, 2, &result));
    CHECK(result && result->width == 4 && result->height == 2 && result->n_names == 3 && !result->has_depth_tag);
    CHECK(result && memcmp(result->labels, labels, sizeof labels) == 0);
    CHECK(result && strcmp(result->names[0], "sky") == 0 && strcmp(result->names[2], "road") == 0);
    dmllm_mask_text_result_free(result);
    dmllm_text_free(text);

    CHECK_OK(dmllm_mask_text_write(labels, 4, 2, NULL, 3, &text));
    CHECK(text && strcmp(text, "<mask>(0,2)(1,3)(2,3)</mask>") == 0);
    dmllm_text_free(text);

    /* One run over a whole 1x1 and a 3x1 map of distinct large values. */
    static const uint16_t one[1] = {0}, big[3] = {65535, 1000, 65535};
    CHECK_OK(dmllm_mask_text_write(one, 1, 1, NULL, 1, &text));
    CHECK(text && strcmp(text, "<mask>(0,1)</mask>") == 0);
    dmllm_text_free(text);
    CHECK_OK(dmllm_mask_text_write(big, 3, 1, NULL, 65536, &text));
    CHECK(text && strcmp(text, "<mask>(65535,1)(1000,1)(65535,1)</mask>") == 0);
    dmllm_text_free(text);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static int count_substring(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_round_trips(void) {
    static const int sizes[][2] = {{1, 1}, {1, 17}, {17, 1}, {37, 23}, {64, 48}, {5, 300}};
    int failures = 0;
    for (int trial = 0; trial < 60; trial++) {
        const int w = sizes[trial % 6][0], h = sizes[trial % 6][1];
        const int n_labels = trial % 3 == 0 ? 2 : trial % 3 == 1 ? 150 : 65536;
        const int change_per_mille = (int)(rng() % 1000); /* from long runs to noise */
        uint16_t *labels = malloc(sizeof *labels * (size_t)w * h); /* [h][w] */
        uint16_t value = (uint16_t)(rng() % (uint32_t)n_labels);
        int changes = 0;
        for (int i = 0; i < w * h; i++) {
            if (i > 0 && (int)(rng() % 1000) < change_per_mille) {
                const uint16_t next = (uint16_t)(rng() % (uint32_t)n_labels);
                changes += next != value;
                value = next;
            }
            labels[i] = value;
        }
        char **names = NULL;
        if (n_labels <= 150) {
            names = malloc(sizeof *names * (size_t)n_labels);
            for (int i = 0; i < n_labels; i++) {
                names[i] = malloc(24);
                snprintf(names[i], 24, i % 7 == 0 ? "<c%d>" : "class %d", i);
            }
        }
        char *text = NULL;
        dmllm_mask_text_result *result = NULL;
        const bool written = dmllm_mask_text_write(labels, w, h, (const char *const *)names, n_labels, &text) == DMLLM_OK;
        const bool parsed = written && dmllm_mask_text_parse(text, w, h, &result) == DMLLM_OK;
        bool same = parsed && memcmp(result->labels, labels, sizeof *labels * (size_t)w * h) == 0 &&
                    result->n_names == (names ? n_labels : 0) && count_substring(text, "(") == changes + 1;
        for (int i = 0; same && names && i < n_labels; i++) same = strcmp(result->names[i], names[i]) == 0;
        if (!same) {
            failures++;
            fprintf(stderr, "round trip %d (%dx%d, %d labels): written %d parsed %d: %s\n", trial, w, h, n_labels,
                    written, parsed, dmllm_last_error());
        }
        dmllm_mask_text_result_free(result);
        dmllm_text_free(text);
        for (int i = 0; names && i < n_labels; i++) free(names[i]);
        free(names);
        free(labels);
    }
    CHECK_MSG(failures == 0, "%d of 60 round trips failed", failures);
}

/* Texts that must parse to the 4x2 map of the hand example. */
static void test_accepted_spellings(void) {
    static const uint16_t expected[8] = {0, 0, 1, 1, 1, 2, 2, 2};
    static const char *const texts[] = {
        "<ref>sky</ref><ref>tree</ref><ref>road</ref><mask>( 0 , 2 ) ,(1,3)\n(2,3)</mask>",
        "  <ref>sky</ref>\n<ref>tree</ref> <ref>road</ref>\n<mask>\n(0,2)(1,3)(2,3)\n</mask>\n",
        "<ref>sky</ref><ref>tree</ref><ref>road</ref><mask>0,0,1,1,1,2,2,2</mask>",
        "<ref>sky</ref><ref>tree</ref><ref>road</ref><mask> 0, 0 ,1,1 , 1,2,2,2 </mask>",
        "<mask>(0,2),(1,3),(2,3),</mask><ref>sky</ref><ref>tree</ref><ref>road</ref>",
        "<depth><mask>(0,2)(1,3)(2,3)</mask>",
        "<ref><BG></ref><ref><FG></ref><ref><OTHERS></ref><mask>(0,2)(1,3)(2,3)</mask>",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        dmllm_mask_text_result *result = NULL;
        CHECK_OK(dmllm_mask_text_parse(texts[i], 4, 2, &result));
        CHECK_MSG(result && memcmp(result->labels, expected, sizeof expected) == 0, "text %zu: wrong map", i);
        if (i == 5) CHECK(result && result->has_depth_tag && result->n_names == 0);
        if (i == 6) CHECK(result && result->n_names == 3 && strcmp(result->names[1], "<FG>") == 0);
        dmllm_mask_text_result_free(result);
    }
    /* Without names, values are free up to 65535 (depth bins). */
    dmllm_mask_text_result *result = NULL;
    CHECK_OK(dmllm_mask_text_parse("<depth><mask>(65535,1)(7,2)</mask>", 3, 1, &result));
    CHECK(result && result->labels[0] == 65535 && result->labels[2] == 7);
    dmllm_mask_text_result_free(result);
    /* An empty name round trips. */
    CHECK_OK(dmllm_mask_text_parse("<ref></ref><mask>(0,1)</mask>", 1, 1, &result));
    CHECK(result && result->n_names == 1 && result->names[0][0] == '\0');
    dmllm_mask_text_result_free(result);
}

static void test_malformed(void) {
    static const char *const texts[] = {
        "",                                                   /* no mask */
        "   \n ",                                             /* no mask */
        "(0,2)(1,3)(2,3)",                                    /* runs without tags */
        "<mask>(0,2)(1,3)(2,2)</mask>",                       /* 7 of 8 values */
        "<mask>(0,2)(1,3)(2,4)</mask>",                       /* 9 values */
        "<mask>(0,2)(1,3)(2,3)(0,1)</mask>",                  /* past the end */
        "<mask>(0,0)(0,2)(1,3)(2,3)</mask>",                  /* run of 0 */
        "<mask>(70000,8)</mask>",                             /* value above 65535 */
        "<mask>(0,99999999999999999999)</mask>",              /* run length overflow */
        "<mask>(0,-8)</mask>",                                /* sign */
        "<mask>(a,8)</mask>",                                 /* not a number */
        "<mask>(0 8)</mask>",                                 /* no comma */
        "<mask>(0,8</mask>",                                  /* unclosed run */
        "<mask>(0,2)x(1,6)</mask>",                           /* junk between runs */
        "<mask>(0,2)(1,3)(2,3)",                              /* no </mask> */
        "<mask></mask>",                                      /* empty */
        "<mask>  \n </mask>",                                 /* blank */
        "<mask>0,0,,1,1,1,2,2,2</mask>",                      /* empty expanded value */
        "<mask>0,0,1,1,1,2,2,2,</mask>",                      /* trailing comma, expanded */
        "<mask>0 0 1 1 1 2 2 2</mask>",                       /* expanded without commas */
        "<mask>0,0,1,1,(1,3)</mask>",                         /* mixed forms */
        "<mask>(0,8)</mask><mask>(0,8)</mask>",               /* two masks */
        "<ref>a</ref><mask>(0,4)(1,4)</mask>",                /* value 1 but one name */
        "<ref>a<mask>(0,8)</mask>",                           /* <ref> never closed */
        "<box>(0,8)</box><mask>(0,8)</mask>",                 /* unknown tag */
        "<mask>(0,8)</mask><|im_end|>",                       /* unknown tag after */
        "Here it is: <mask>(0,8)</mask>",                     /* plain text */
        "<mask>(0,8)</mask>!",                                /* trailing junk */
        "</mask>(0,8)",                                       /* close before open */
        "<ref>a</ref><ref>b</ref>",                           /* names only */
        "<mask>(0,8)(</mask>",                                /* truncated run */
        "<mask>(0,4294967296)</mask>",                        /* run length past 32 bits */
        "<mask>(65536,8)</mask>",                             /* value just past uint16 */
        "<mask>\x01(0,8)</mask>",                             /* control byte */
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        dmllm_mask_text_result *result = (dmllm_mask_text_result *)&failures; /* must be reset */
        const dmllm_status status = dmllm_mask_text_parse(texts[i], 4, 2, &result);
        const bool ok = status == DMLLM_ERR_FORMAT && result == NULL && strstr(dmllm_last_error(), "byte") != NULL;
        if (!ok) {
            failures++;
            fprintf(stderr, "malformed text %zu \"%s\": status %d, message %s\n", i, texts[i], status, dmllm_last_error());
        } else {
            printf("  %2zu -> %s\n", i, dmllm_last_error());
        }
    }
    CHECK_MSG(failures == 0, "%d malformed texts not refused properly", failures);

    dmllm_mask_text_result *result = NULL;
    CHECK_STATUS(dmllm_mask_text_parse(NULL, 4, 2, &result), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_text_parse("<mask>(0,8)</mask>", 0, 2, &result), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_text_parse("<mask>(0,8)</mask>", 1 << 16, 1 << 14, &result), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_text_parse("<mask>(0,8)</mask>", 4, 2, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    /* A message names the offset of the problem. */
    CHECK_STATUS(dmllm_mask_text_parse("<mask>(0,2)(1,x)</mask>", 4, 2, &result), DMLLM_ERR_FORMAT);
    CHECK_MSG(strstr(dmllm_last_error(), "byte 14") != NULL, "%s", dmllm_last_error());
}

static void test_write_errors(void) {
    static const uint16_t labels[4] = {0, 1, 2, 1};
    static const char *const bad_names[3] = {"a", "b</ref>c", "d"};
    static const char *const null_name[3] = {"a", NULL, "d"};
    char *text = (char *)labels; /* must be reset to NULL */
    CHECK_STATUS(dmllm_mask_text_write(labels, 2, 2, bad_names, 3, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK(text == NULL && strstr(dmllm_last_error(), "names[1]") != NULL);
    CHECK_STATUS(dmllm_mask_text_write(labels, 2, 2, null_name, 3, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_text_write(labels, 2, 2, NULL, 2, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(dmllm_last_error(), "(x 0, y 1)") != NULL, "%s", dmllm_last_error());
    CHECK_STATUS(dmllm_mask_text_write(labels, 2, 2, NULL, 0, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_text_write(labels, 2, 2, NULL, 65537, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_text_write(labels, 0, 2, NULL, 3, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_text_write(NULL, 2, 2, NULL, 3, &text), DMLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(dmllm_mask_text_write(labels, 2, 2, NULL, 3, NULL), DMLLM_ERR_INVALID_ARGUMENT);
    dmllm_text_free(NULL);
    dmllm_mask_text_result_free(NULL);
}

/* Every proper prefix of a valid text fails; every single-byte mutation either fails cleanly or
 * yields a map whose values respect the names. Run under ASan these also check memory safety. */
static void test_sweeps(void) {
    static const uint16_t labels[12] = {3, 3, 3, 0, 0, 1, 1, 1, 1, 2, 3, 3};
    static const char *const names[4] = {"wall", "<FG>", "chest of drawers", "sky"};
    char *text = NULL;
    CHECK_OK(dmllm_mask_text_write(labels, 4, 3, names, 4, &text));
    if (!text) return;
    const size_t length = strlen(text);
    char *copy = malloc(length + 1);
    int prefix_accepted = 0, mutation_bad = 0, mutations_ok = 0;
    for (size_t n = 0; n < length; n++) {
        memcpy(copy, text, n);
        copy[n] = '\0';
        dmllm_mask_text_result *result = NULL;
        if (dmllm_mask_text_parse(copy, 4, 3, &result) != DMLLM_ERR_FORMAT || result) prefix_accepted++;
        dmllm_mask_text_result_free(result);
    }
    static const char replacements[] = "()<>,/0917 x\n";
    for (size_t i = 0; i < length; i++)
        for (const char *r = replacements; *r; r++) {
            memcpy(copy, text, length + 1);
            copy[i] = *r;
            dmllm_mask_text_result *result = NULL;
            const dmllm_status status = dmllm_mask_text_parse(copy, 4, 3, &result);
            if (status == DMLLM_OK) {
                mutations_ok++;
                for (int k = 0; k < 12; k++)
                    mutation_bad += result->n_names > 0 && result->labels[k] >= result->n_names;
            } else {
                mutation_bad += status != DMLLM_ERR_FORMAT || result != NULL;
            }
            dmllm_mask_text_result_free(result);
        }
    printf("sweeps: %zu prefixes refused, %zu mutations (%d still parse)\n", length,
           length * (sizeof replacements - 1), mutations_ok);
    CHECK(prefix_accepted == 0 && mutation_bad == 0);
    free(copy);
    dmllm_text_free(text);
}

/* The <ref> names of a generated reply (dense.c's named readout, pipeline.c's open set). */
static void test_reply_names(void) {
    static const struct {
        const char *text, *skip;
        int n;
        const char *names[4];
    } cases[] = {
        {"The target categories include <ref>sky</ref><ref> road </ref><ref>sky</ref>, numbered", NULL, 2,
         {"sky", "road"}},
        {"<ref>ball</ref><ref><OTHERS></ref><ref></ref><ref>  </ref><mask><ref>tent</ref></mask>", "<OTHERS>", 1,
         {"ball"}},
        {"<ref>box</ref><ref>traffic co", NULL, 1, {"box"}},           /* cut off by the length cap */
        {"<ref>box</ref><mask></ref>", NULL, 1, {"box"}},              /* only before <mask> */
        {"<ref>Sky</ref>\n<ref>sky</ref>", NULL, 2, {"Sky", "sky"}},  /* matching is the caller's */
        {"This is the <depth>.", NULL, 0, {NULL}},
        {NULL, NULL, 0, {NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char **names = NULL;
        int n = -1;
        CHECK_OK(dmllm_reply_names(cases[i].text, cases[i].skip, &names, &n));
        CHECK_MSG(n == cases[i].n, "case %zu: %d names, expected %d", i, n, cases[i].n);
        for (int k = 0; k < n && k < cases[i].n; k++)
            CHECK_MSG(!strcmp(names[k], cases[i].names[k]), "case %zu name %d: \"%s\"", i, k, names[k]);
        dmllm_reply_names_free(names, n);
    }
}

int main(void) {
    test_reply_names();
    test_hand_example();
    test_round_trips();
    test_accepted_spellings();
    test_malformed();
    test_write_errors();
    test_sweeps();
    return test_finish("test_masktext");
}
