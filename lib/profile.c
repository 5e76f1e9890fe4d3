/*
 * profile.c: the readout profile (profile.h): youtu_vl defaults, readout_profile.json parsing,
 * depth bin -> metres. Reads one small JSON file; touches no model or session state.
 */
#include "profile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void set_text(char *dst, size_t size, const char *src) { snprintf(dst, size, "%s", src); }
#define SET_TEXT(field, text) set_text((field), sizeof(field), (text))

static void add_depth(dmllm_readout_profile *p, const char *name, dmllm_depth_scale scale, double min_m, double max_m) {
    dmllm_depth_quantisation *q = &p->depth_profiles[p->n_depth_profiles++];
    SET_TEXT(q->name, name);
    q->scale = scale;
    q->min_m = min_m;
    q->max_m = max_m;
}

void dmllm_profile_defaults(dmllm_readout_profile *p) {
    memset(p, 0, sizeof *p);
    p->alignment = DMLLM_ALIGN_PREVIOUS;          /* the NTP shift of the report's figure [I] */
    p->first_subtoken_only = false;               /* Eq. 6 */
    p->interpolate_probabilities = false;         /* Eq. 6: I(R(Z)) of the logits */
    p->semantic_readout = DMLLM_READOUT_NAMED;    /* report 9.2: the names the model printed */
    p->crf = true;                                /* demo.py: seg_crf = True ("False can be faster") */
    p->softmax_temperature = 0.2f;                /* App. A.1.5 */
    p->sigmoid_scale = 0.25f;
    p->background_level = 0.5f;
    SET_TEXT(p->fg_token, "<FG>");
    SET_TEXT(p->bg_token, "<BG>");
    SET_TEXT(p->depth_token_format, "<custom_%d>"); /* App. A.1.7 */
    p->depth_first_bin = 1;
    p->depth_bins = 1000;
    p->depth_upsample = 2;
    p->depth_refine_bins = 0; /* App. A.1.7: the argmax */
    add_depth(p, "nyuv2", DMLLM_DEPTH_LINEAR, 0.0, 10.0);
    add_depth(p, "cityscapes", DMLLM_DEPTH_LINEAR, 0.0, 80.0);
    add_depth(p, "ddad", DMLLM_DEPTH_LINEAR, 0.05, 120.0);
    add_depth(p, "open_world", DMLLM_DEPTH_LOG, 0.5, 100.0);
    SET_TEXT(p->depth_profile, "open_world");
    SET_TEXT(p->prompt_semantic, "Segment: {classes}, without the background class.");
    SET_TEXT(p->prompt_semantic_background, "Segment: {classes}.");
    SET_TEXT(p->prompt_fgbg, "Segment the core target.");
    SET_TEXT(p->prompt_depth, "Estimate the depth.");
    SET_TEXT(p->prompt_openset, "Segment all objects in this image."); /* the demo's category discovery */
    p->crop_padding = 1.2f;     /* report App. A.1.6 */
    p->crop_short_side = 1280;  /* report 9.2: "lower allowed to save time" */
    p->crop_box_px = 1;         /* the demo's 1 px rectangle */
}

const dmllm_depth_quantisation *dmllm_profile_depth(const dmllm_readout_profile *p, const char *name) {
    for (int i = 0; i < p->n_depth_profiles; i++)
        if (strcmp(p->depth_profiles[i].name, name) == 0) return &p->depth_profiles[i];
    return NULL;
}

double dmllm_depth_bin_metres(const dmllm_readout_profile *p, const dmllm_depth_quantisation *q, double bin) {
    const double t = p->depth_bins > 1 ? (bin - p->depth_first_bin) / (p->depth_bins - 1) : 0.0;
    if (q->scale == DMLLM_DEPTH_LOG) return q->min_m * pow(q->max_m / q->min_m, t);
    return q->min_m + t * (q->max_m - q->min_m);
}

bool dmllm_profile_knows_class(const dmllm_readout_profile *p, const char *name) {
    const char *known = p->known_classes;
    for (int k = 0; k < p->n_known_classes; k++, known += strlen(known) + 1)
        if (strcmp(known, name) == 0) return true;
    return p->n_known_classes == 0;
}

/* ---- parsing --------------------------------------------------------------------------------- */

typedef struct parse_scope {
    const char *source;
    const char *key;
} parse_scope;

static dmllm_status bad(const parse_scope *s, const char *what) {
    return dmllm_fail(DMLLM_ERR_FORMAT, "%s: \"%s\" %s", s->source, s->key, what);
}

static dmllm_status read_text(const parse_scope *s, const cJSON *item, char *dst, size_t size) {
    if (!cJSON_IsString(item)) return bad(s, "must be a string");
    if (strlen(item->valuestring) >= size) return bad(s, "is too long");
    snprintf(dst, size, "%s", item->valuestring);
    return DMLLM_OK;
}

static dmllm_status read_number(const parse_scope *s, const cJSON *item, double lo, double hi, double *out) {
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < lo || item->valuedouble > hi) {
        char what[96];
        snprintf(what, sizeof what, "must be a number in [%g, %g]", lo, hi);
        return bad(s, what);
    }
    *out = item->valuedouble;
    return DMLLM_OK;
}

static dmllm_status read_float(const parse_scope *s, const cJSON *item, double lo, double hi, float *out) {
    double v = 0.0;
    DMLLM_TRY(read_number(s, item, lo, hi, &v));
    *out = (float)v;
    return DMLLM_OK;
}

static dmllm_status read_int(const parse_scope *s, const cJSON *item, int lo, int hi, int *out) {
    double v = 0.0;
    DMLLM_TRY(read_number(s, item, lo, hi, &v));
    if (v != floor(v)) return bad(s, "must be an integer");
    *out = (int)v;
    return DMLLM_OK;
}

/* One of the strings in choices (NULL-terminated); *out = its index. */
static dmllm_status read_choice(const parse_scope *s, const cJSON *item, const char *const *choices, int *out) {
    if (cJSON_IsString(item))
        for (int i = 0; choices[i]; i++)
            if (strcmp(item->valuestring, choices[i]) == 0) {
                *out = i;
                return DMLLM_OK;
            }
    char what[160] = "must be one of";
    for (int i = 0; choices[i]; i++)
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s \"%s\"", i ? "," : "", choices[i]);
    return bad(s, what);
}

/* The format must hold exactly one %d and no other conversion, since it is given to snprintf. */
static dmllm_status check_bin_format(const parse_scope *s, const char *format) {
    int conversions = 0;
    for (const char *c = format; *c; c++) {
        if (*c != '%') continue;
        if (c[1] == '%') { c++; continue; }
        if (c[1] != 'd') return bad(s, "may hold only %d conversions");
        conversions++;
    }
    return conversions == 1 ? DMLLM_OK : bad(s, "must hold exactly one %d");
}

static dmllm_status parse_depth_profiles(const parse_scope *outer, const cJSON *object, dmllm_readout_profile *p) {
    if (!cJSON_IsObject(object)) return bad(outer, "must be an object of named quantisations");
    const cJSON *entry;
    cJSON_ArrayForEach(entry, object) {
        const parse_scope s = {outer->source, entry->string};
        if (!cJSON_IsObject(entry)) return bad(&s, "must be an object with kind, min and max");
        if (strlen(entry->string) >= DMLLM_PROFILE_NAME) return bad(&s, "name is too long");
        dmllm_depth_quantisation q = {0};
        SET_TEXT(q.name, entry->string);
        int kind = -1;
        bool have_min = false, have_max = false;
        const cJSON *field;
        cJSON_ArrayForEach(field, entry) {
            const parse_scope fs = {outer->source, field->string};
            if (strcmp(field->string, "kind") == 0) {
                static const char *const kinds[] = {"linear", "log", NULL};
                DMLLM_TRY(read_choice(&fs, field, kinds, &kind));
            } else if (strcmp(field->string, "min") == 0) {
                DMLLM_TRY(read_number(&fs, field, 0.0, 1e6, &q.min_m));
                have_min = true;
            } else if (strcmp(field->string, "max") == 0) {
                DMLLM_TRY(read_number(&fs, field, 0.0, 1e6, &q.max_m));
                have_max = true;
            } else {
                return bad(&fs, "is not a depth quantisation key (kind, min, max)");
            }
        }
        if (kind < 0 || !have_min || !have_max) return bad(&s, "needs kind, min and max");
        if (!(q.max_m > q.min_m)) return bad(&s, "needs max > min");
        if (kind == DMLLM_DEPTH_LOG && !(q.min_m > 0.0)) return bad(&s, "is logarithmic and needs min > 0");
        q.scale = (dmllm_depth_scale)kind;
        dmllm_depth_quantisation *slot = (dmllm_depth_quantisation *)dmllm_profile_depth(p, q.name);
        if (!slot) {
            if (p->n_depth_profiles == DMLLM_MAX_DEPTH_PROFILES) return bad(&s, "is one depth profile too many");
            slot = &p->depth_profiles[p->n_depth_profiles++];
        }
        *slot = q;
    }
    return DMLLM_OK;
}

/* "depth_evaluation": how the model's depth is benchmarked. Only checked here (the library's own
 * calls do not use it): densemllm eval reads it for its defaults, so that a bad value fails at load
 * with the key named, as every other key. */
static dmllm_status check_depth_evaluation(const parse_scope *outer, const cJSON *object) {
    if (!cJSON_IsObject(object)) return bad(outer, "must be an object with layout, min_depth, max_depth");
    double range[2] = {1e-3, 10.0}; /* dmllm_depth_metrics_params_init's */
    const cJSON *field;
    cJSON_ArrayForEach(field, object) {
        const parse_scope fs = {outer->source, field->string};
        int choice;
        if (strcmp(field->string, "layout") == 0) {
            static const char *const layouts[] = {"image_first", "prompt_first", NULL};
            DMLLM_TRY(read_choice(&fs, field, layouts, &choice));
        } else if (strcmp(field->string, "min_depth") == 0 || strcmp(field->string, "max_depth") == 0) {
            const bool max = strcmp(field->string, "max_depth") == 0;
            DMLLM_TRY(read_number(&fs, field, 0.0, 1e6, &range[max]));
        } else {
            return bad(&fs, "is not a depth evaluation key (layout, min_depth, max_depth)");
        }
    }
    if (!(range[0] > 0.0 && range[1] > range[0])) return bad(outer, "needs 0 < min_depth < max_depth");
    return DMLLM_OK;
}

static dmllm_status parse_prompts(const parse_scope *outer, const cJSON *object, dmllm_readout_profile *p) {
    if (!cJSON_IsObject(object)) return bad(outer, "must be an object of task prompts");
    const cJSON *item;
    cJSON_ArrayForEach(item, object) {
        const parse_scope s = {outer->source, item->string};
        char *dst = strcmp(item->string, "semantic") == 0              ? p->prompt_semantic
                    : strcmp(item->string, "semantic_background") == 0 ? p->prompt_semantic_background
                    : strcmp(item->string, "fgbg") == 0                ? p->prompt_fgbg
                    : strcmp(item->string, "depth") == 0               ? p->prompt_depth
                    : strcmp(item->string, "openset") == 0             ? p->prompt_openset
                                                                       : NULL;
        if (!dst) return bad(&s, "is not a prompt name (semantic, semantic_background, fgbg, depth, openset)");
        DMLLM_TRY(read_text(&s, item, dst, DMLLM_PROFILE_PROMPT));
    }
    return DMLLM_OK;
}

static dmllm_status parse_known_classes(const parse_scope *s, const cJSON *array, dmllm_readout_profile *p) {
    if (!cJSON_IsArray(array) || cJSON_GetArraySize(array) == 0) return bad(s, "must be a non-empty array of names");
    size_t used = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, array) {
        if (!cJSON_IsString(item) || !item->valuestring[0]) return bad(s, "must hold non-empty strings only");
        const size_t size = strlen(item->valuestring) + 1;
        if (size > sizeof p->known_classes - used) {
            char what[64];
            snprintf(what, sizeof what, "holds more names than fit in %zu bytes", sizeof p->known_classes);
            return bad(s, what);
        }
        memcpy(p->known_classes + used, item->valuestring, size);
        used += size;
    }
    p->n_known_classes = cJSON_GetArraySize(array);
    return DMLLM_OK;
}

static dmllm_status parse_key(const parse_scope *s, const cJSON *item, dmllm_readout_profile *p) {
    const char *key = s->key;
    int choice;
    if (strcmp(key, "alignment") == 0) {
        static const char *const alignments[] = {"own", "previous", NULL};
        DMLLM_TRY(read_choice(s, item, alignments, &choice));
        p->alignment = choice == 0 ? DMLLM_ALIGN_OWN : DMLLM_ALIGN_PREVIOUS;
    } else if (strcmp(key, "class_name_prefix") == 0) {
        return read_text(s, item, p->class_name_prefix, sizeof p->class_name_prefix);
    } else if (strcmp(key, "class_score") == 0) {
        static const char *const scores[] = {"mean", "first", NULL};
        DMLLM_TRY(read_choice(s, item, scores, &choice));
        p->first_subtoken_only = choice == 1;
    } else if (strcmp(key, "interpolation") == 0) {
        static const char *const spaces[] = {"logits", "probabilities", NULL};
        DMLLM_TRY(read_choice(s, item, spaces, &choice));
        p->interpolate_probabilities = choice == 1;
    } else if (strcmp(key, "semantic_readout") == 0) {
        static const char *const readouts[] = {"all", "named", NULL};
        DMLLM_TRY(read_choice(s, item, readouts, &choice));
        p->semantic_readout = choice == 1 ? DMLLM_READOUT_NAMED : DMLLM_READOUT_ALL;
    } else if (strcmp(key, "crf") == 0) {
        if (!cJSON_IsBool(item)) return bad(s, "must be true or false");
        p->crf = cJSON_IsTrue(item);
    } else if (strcmp(key, "softmax_temperature") == 0) {
        return read_float(s, item, 1e-6, 1e6, &p->softmax_temperature);
    } else if (strcmp(key, "sigmoid_scale") == 0) {
        return read_float(s, item, 1e-6, 1e6, &p->sigmoid_scale);
    } else if (strcmp(key, "background_level") == 0) {
        DMLLM_TRY(read_float(s, item, 0.0, 1.0, &p->background_level));
        if (p->background_level <= 0.0f || p->background_level >= 1.0f) return bad(s, "must be strictly between 0 and 1");
    } else if (strcmp(key, "fg_token") == 0) {
        return read_text(s, item, p->fg_token, sizeof p->fg_token);
    } else if (strcmp(key, "bg_token") == 0) {
        return read_text(s, item, p->bg_token, sizeof p->bg_token);
    } else if (strcmp(key, "depth_token_format") == 0) {
        DMLLM_TRY(read_text(s, item, p->depth_token_format, sizeof p->depth_token_format));
        return check_bin_format(s, p->depth_token_format);
    } else if (strcmp(key, "depth_first_bin") == 0) {
        return read_int(s, item, 0, 1000000, &p->depth_first_bin);
    } else if (strcmp(key, "depth_bins") == 0) {
        return read_int(s, item, 2, 65535, &p->depth_bins);
    } else if (strcmp(key, "depth_upsample") == 0) {
        return read_int(s, item, 1, 16, &p->depth_upsample);
    } else if (strcmp(key, "depth_evaluation") == 0) {
        return check_depth_evaluation(s, item);
    } else if (strcmp(key, "depth_refine_bins") == 0) {
        return read_int(s, item, 0, 65535, &p->depth_refine_bins);
    } else if (strcmp(key, "depth_profile") == 0) {
        return read_text(s, item, p->depth_profile, sizeof p->depth_profile);
    } else if (strcmp(key, "depth_profiles") == 0) {
        return parse_depth_profiles(s, item, p);
    } else if (strcmp(key, "crop_padding") == 0) {
        return read_float(s, item, 1.0, 10.0, &p->crop_padding);
    } else if (strcmp(key, "crop_short_side") == 0) {
        return read_int(s, item, 32, 16384, &p->crop_short_side);
    } else if (strcmp(key, "crop_box_px") == 0) {
        return read_int(s, item, 0, 64, &p->crop_box_px);
    } else if (strcmp(key, "prompts") == 0) {
        return parse_prompts(s, item, p);
    } else if (strcmp(key, "classes") == 0) {
        return parse_known_classes(s, item, p);
    } else if (key[0] != '_') { /* "_comment" and the like are allowed */
        return bad(s, "is not a readout profile key");
    }
    return DMLLM_OK;
}

dmllm_status dmllm_profile_parse(const char *json, size_t length, const char *source, dmllm_readout_profile *p) {
    cJSON *root = cJSON_ParseWithLength(json, length);
    if (!root) return dmllm_fail(DMLLM_ERR_FORMAT, "%s: not valid JSON", source);
    dmllm_status status = DMLLM_OK;
    if (!cJSON_IsObject(root)) status = dmllm_fail(DMLLM_ERR_FORMAT, "%s: the top level must be an object", source);
    const cJSON *item;
    if (status == DMLLM_OK) cJSON_ArrayForEach(item, root) {
            const parse_scope s = {source, item->string};
            status = parse_key(&s, item, p);
            if (status != DMLLM_OK) break;
        }
    if (status == DMLLM_OK && !dmllm_profile_depth(p, p->depth_profile))
        status = dmllm_fail(DMLLM_ERR_FORMAT, "%s: depth_profile \"%s\" is not among the depth_profiles", source,
                            p->depth_profile);
    cJSON_Delete(root);
    return status;
}

dmllm_status dmllm_profile_load(const char *model_dir, dmllm_readout_profile *p) {
    dmllm_profile_defaults(p);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", model_dir, DMLLM_PROFILE_FILE) >= sizeof path)
        return dmllm_fail(DMLLM_ERR_INVALID_ARGUMENT, "model directory path is too long");
    struct stat st;
    if (stat(path, &st) != 0) return errno == ENOENT ? DMLLM_OK : dmllm_fail(DMLLM_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_size > (1 << 20))
        return dmllm_fail(DMLLM_ERR_FORMAT, "%s: not a regular file of at most 1 MiB", path);
    FILE *f = fopen(path, "rb");
    if (!f) return dmllm_fail(DMLLM_ERR_IO, "%s: %s", path, strerror(errno));
    char *text = NULL;
    dmllm_status status = dmllm_alloc(&text, (size_t)st.st_size + 1, 1, "the readout profile");
    if (status == DMLLM_OK && fread(text, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        status = dmllm_fail(DMLLM_ERR_IO, "%s: short read", path);
    fclose(f);
    if (status == DMLLM_OK) status = dmllm_profile_parse(text, (size_t)st.st_size, path, p);
    free(text);
    return status;
}
