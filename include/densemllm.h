/*
 * densemllm.h: the one public header of libdensemllm.
 *
 * densemllm runs DenseMLLM-style multimodal LLMs (Tencent Youtu-VL: SigLIP2-style ViT, 2x2 merger,
 * MLA decoder) on a CPU, and reads dense predictions (segmentation, depth, masks) out of the
 * LM-head logits at the vision-token positions.
 *
 * THREADING AND OWNERSHIP RULES
 *  - dmllm_model is immutable once dmllm_model_load() returns. One model may be shared by any
 *    number of threads and sessions at once. Free it only after every session made from it.
 *  - dmllm_session holds all mutable state (KV cache, encoded image, scratch, last error). Use a
 *    session from one thread at a time; run sessions in parallel by giving each thread its own.
 *    A session uses `n_threads` OpenMP threads inside each call (see dmllm_session_params).
 *  - dmllm_image is immutable after creation and may be shared across threads.
 *  - Every function returns a dmllm_status (DMLLM_OK == 0, errors < 0) unless it is a getter.
 *    On failure the message is available from dmllm_session_errmsg() for calls that take a
 *    session, and from dmllm_last_error() (thread-local) for every call; both stay valid until
 *    the next failing call on the same session or thread.
 *  - Objects the library allocates are freed by the library: *_free() functions, all of which
 *    accept NULL. Caller buffers are never retained after a call returns.
 *  - Output buffers are caller-provided with a capacity in elements. When the capacity is too
 *    small, the call fills in the required shape and returns DMLLM_ERR_BUFFER_TOO_SMALL, so a
 *    first call with (NULL, 0) queries the size. A NULL buffer counts as capacity 0, and the
 *    pointers that receive the shape or count (rows, cols, out_count, n_ids, length) may be NULL.
 *  - Params structs are versioned by their first field, struct_size: the library reads only the
 *    first struct_size bytes. A struct_size of at most 4, or larger than this library's struct (a
 *    newer header), fails with DMLLM_ERR_INVALID_ARGUMENT naming struct_size. The same holds for
 *    every struct the caller allocates that may grow: output structs the library fills
 *    (dmllm_model_info, dmllm_image_grid, ...: the caller sets struct_size = sizeof, the library
 *    writes only that many bytes) and arrays of input structs (dmllm_chat_message: element i lies
 *    i * messages[0].struct_size bytes in, and every element must carry the same struct_size).
 *    Arrays of growable structs the library allocates are arrays of pointers (dmllm_regions), so
 *    indexing them never depends on the size of an element.
 *  - On failure nothing is written to caller outputs except shape queries, and the session is
 *    left as it was before the call (a failed evaluation rolls the KV cache back).
 *
 * TYPICAL USE
 *    dmllm_model_params mp;  dmllm_model_params_init(&mp);
 *    dmllm_model *model;     if (dmllm_model_load("models/tiny", &mp, &model)) puts(dmllm_last_error());
 *    dmllm_session_params sp; dmllm_session_params_init(&sp);
 *    dmllm_session *s;       dmllm_session_create(model, &sp, &s);
 *    dmllm_image *img;       dmllm_image_load_file("cat.jpg", &img);
 *    dmllm_session_encode_image(s, img);          // preprocess + vision tower + merger
 *    dmllm_session_eval(s, ids, n_ids);           // ids contain N <|image_pad|> slots
 *    dmllm_session_image_logits(s, DMLLM_ALIGN_OWN, label_ids, k, out, cap, &rows, &cols);
 *    dmllm_image_free(img); dmllm_session_free(s); dmllm_model_free(model);
 */
#ifndef DENSEMLLM_H
#define DENSEMLLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- export macro (overridable, zstd style) --------------------------------------------------- */
#ifndef DMLLM_VISIBILITY
#  if defined(__GNUC__) && __GNUC__ >= 4
#    define DMLLM_VISIBILITY __attribute__((visibility("default")))
#  else
#    define DMLLM_VISIBILITY
#  endif
#endif
#ifndef DMLLM_API
#  define DMLLM_API DMLLM_VISIBILITY
#endif

/* ---- versions ---------------------------------------------------------------------------------- */
#define DMLLM_VERSION_MAJOR 0
#define DMLLM_VERSION_MINOR 2
#define DMLLM_VERSION_PATCH 0
#define DMLLM_VERSION_NUMBER (DMLLM_VERSION_MAJOR * 10000 + DMLLM_VERSION_MINOR * 100 + DMLLM_VERSION_PATCH)
#define DMLLM_ABI_VERSION 0 /* the SONAME major: libdensemllm.so.0 */

/* Runtime versions, to detect a header/library mismatch:
 * assert(dmllm_version_number() == DMLLM_VERSION_NUMBER). */
DMLLM_API unsigned dmllm_version_number(void);
DMLLM_API const char *dmllm_version_string(void);

/* ---- status and errors ------------------------------------------------------------------------- */
typedef enum dmllm_status {
    DMLLM_OK = 0,
    DMLLM_ERR_INVALID_ARGUMENT = -1, /* a NULL pointer, an out-of-range value, a wrong struct_size */
    DMLLM_ERR_IO = -2,               /* a file could not be opened, read or mapped */
    DMLLM_ERR_FORMAT = -3,           /* malformed or truncated file or data (JSON, safetensors, image) */
    DMLLM_ERR_UNSUPPORTED = -4,      /* well-formed but not supported (architecture, dtype, image type) */
    DMLLM_ERR_SHAPE = -5,            /* a missing tensor, or a tensor or buffer of the wrong shape */
    DMLLM_ERR_OUT_OF_MEMORY = -6,
    DMLLM_ERR_ABORTED = -7,          /* the progress callback asked to stop */
    DMLLM_ERR_BACKEND = -8,          /* the compute backend (oneDNN, OpenBLAS) failed */
    DMLLM_ERR_STATE = -9,            /* the call does not fit the session's state (e.g. no image encoded) */
    DMLLM_ERR_BUFFER_TOO_SMALL = -10,/* the output capacity is too small; the shape was filled in */
    DMLLM_ERR_CONTEXT_FULL = -11     /* the evaluation would exceed the session's context size */
} dmllm_status;

/* Static English name of a status; never NULL. */
DMLLM_API const char *dmllm_status_str(dmllm_status status);
/* Message of the last failure on the calling thread ("" if none). */
DMLLM_API const char *dmllm_last_error(void);

/* Frees a string the library allocated and returned through a char ** (dmllm_chat_apply,
 * dmllm_mask_text_write, ...). Accepts NULL. */
DMLLM_API void dmllm_text_free(char *text);

/* ---- logging ----------------------------------------------------------------------------------- */
typedef enum dmllm_log_level {
    DMLLM_LOG_ERROR = 0,
    DMLLM_LOG_WARN = 1,
    DMLLM_LOG_INFO = 2,
    DMLLM_LOG_DEBUG = 3
} dmllm_log_level;

typedef void (*dmllm_log_callback)(dmllm_log_level level, const char *message, void *user_data);
/* Process-wide log sink. The default writes WARN and ERROR to stderr. Passing NULL silences the
 * library. Not to be called while other threads use the library. */
DMLLM_API void dmllm_log_set(dmllm_log_callback callback, void *user_data);

/* ---- progress and abort ------------------------------------------------------------------------ */
/* Called during long work with a stage name ("load", "pack", "vision", "llm", ...) and a count of
 * steps done out of total. Return non-zero to abort: the call then fails with DMLLM_ERR_ABORTED. */
typedef int (*dmllm_progress_callback)(const char *stage, int done, int total, void *user_data);

/* ---- model ------------------------------------------------------------------------------------- */
typedef struct dmllm_model dmllm_model;

/* Precision of the matrix multiplications. AUTO picks BF16 on CPUs with avx512_bf16, F32
 * otherwise; the environment variable DMLLM_COMPUTE (bf16|f32|openblas) overrides AUTO. */
typedef enum dmllm_compute_type {
    DMLLM_COMPUTE_AUTO = 0,
    DMLLM_COMPUTE_BF16 = 1,     /* oneDNN bf16 x bf16 -> f32, weights pre-packed at load */
    DMLLM_COMPUTE_F32 = 2,      /* oneDNN f32, weights pre-packed at load */
    DMLLM_COMPUTE_OPENBLAS = 3  /* OpenBLAS sgemm on f32 weights, for comparison */
} dmllm_compute_type;

/* Format of the packed matmul weights. AUTO and BF16/F32 keep them in the compute type's format
 * (BF16 and F32 imply that compute type, and a different explicit compute is an error). INT8
 * quantises every linear of the vision tower, merger and decoder layers at load to int8 per
 * output channel (symmetric) and their inputs per token at run time (W8A8, oneDNN VNNI/AMX int8);
 * the tied LM head stays in the compute type. Half the weight memory of bf16; fails with
 * DMLLM_ERR_UNSUPPORTED on CPUs without VNNI (or AMX) and with DMLLM_COMPUTE_OPENBLAS. */
typedef enum dmllm_weights_type {
    DMLLM_WEIGHTS_AUTO = 0,
    DMLLM_WEIGHTS_BF16 = 1,
    DMLLM_WEIGHTS_F32 = 2,
    DMLLM_WEIGHTS_INT8 = 3
} dmllm_weights_type;

typedef struct dmllm_model_params {
    uint32_t struct_size;              /* set by dmllm_model_params_init() */
    dmllm_compute_type compute;        /* default DMLLM_COMPUTE_AUTO */
    int n_threads;                     /* threads used to pack weights at load; <= 0: all cores */
    dmllm_progress_callback progress;  /* optional; stage "load" */
    void *progress_user_data;
    int check_only;                    /* non-zero: validate the checkpoint and read its config without
                                          packing weights; dmllm_model_get_info() works, sessions cannot
                                          be created. Default 0. */
    int64_t memory_limit_bytes;        /* the default of its sessions' memory_limit_bytes (see MEMORY
                                          LIMIT); the load itself is not checked. 0 (default): none */
    dmllm_weights_type weights;        /* default DMLLM_WEIGHTS_AUTO */
    const char *cache_dir;             /* packed-weight cache directory (see PACKED-WEIGHT CACHE).
                                          NULL or "" (default): $DMLLM_CACHE_DIR, else
                                          $XDG_CACHE_HOME/densemllm, else ~/.cache/densemllm;
                                          "off": no cache. Read during the load only. */
} dmllm_model_params;

/* PACKED-WEIGHT CACHE: the first load of a checkpoint with a compute path repacks every weight for
 * oneDNN (seconds to a minute for a 4B model) and writes the packed bytes to one file in the cache
 * directory (<model dir name>-<hash>.dmllm-pack, about the size of the packed weights); later loads
 * map that file read-only instead, so the weights live once in the page cache, shared by every
 * process using them. The file is keyed by the library and oneDNN versions, the CPU ISA oneDNN
 * uses, the compute path, the weights format (bf16, f32 or int8: each its own file) and the
 * checkpoint (config.json, the index, and each shard's size, mtime, inode and safetensors header:
 * not a hash of the tensor bytes, which would take as long as repacking). A file that is
 * truncated, corrupt (header or index checksum), or stale is rebuilt, never trusted; it is replaced
 * atomically (written aside, synced, renamed), so concurrent loads are safe. A directory that
 * cannot be written is logged and the model loads without a cache. */
DMLLM_API void dmllm_model_params_init(dmllm_model_params *params);
DMLLM_API size_t dmllm_model_params_sizeof(void);

/* Loads a Hugging Face model directory: config.json plus model.safetensors or a sharded
 * model.safetensors.index.json. Every tensor is checked against the shapes config.json implies. */
DMLLM_API dmllm_status dmllm_model_load(const char *model_dir, const dmllm_model_params *params,
                                        dmllm_model **out_model);
DMLLM_API void dmllm_model_free(dmllm_model *model);

typedef struct dmllm_model_info {
    uint32_t struct_size;       /* set by the caller: sizeof(dmllm_model_info) */
    const char *architecture;   /* e.g. "YoutuVLForConditionalGeneration"; owned by the model */
    const char *compute;        /* matmul path in use: "onednn-bf16", "onednn-f32", "openblas-f32",
                                   or "none" for a check_only model */
    const char *model_dir;      /* the directory it was loaded from; owned by the model */
    int64_t n_params;           /* parameters used by inference (tied LM head counted once) */
    int vocab_size;
    int text_hidden_size, text_layers, text_heads;
    int vision_hidden_size, vision_layers, vision_heads;
    int patch_size, spatial_merge_size;
    int image_token_id, vision_start_token_id, vision_end_token_id;
    int bos_token_id, eos_token_id;
    int text_intermediate_size, vision_intermediate_size;
    int q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim;
    double rope_theta;
    char weights_dtype[8];      /* dtype of the stored weights: "BF16", "F16", "F32" (of embed_tokens) */
    const char *weights;        /* format of the packed matmul weights: "bf16", "f32", "int8", or
                                   "none" for a check_only model */
} dmllm_model_info;

DMLLM_API dmllm_status dmllm_model_get_info(const dmllm_model *model, dmllm_model_info *info);

/* ---- images ------------------------------------------------------------------------------------ */
typedef struct dmllm_image dmllm_image; /* 8-bit RGB, row-major, 3 bytes per pixel, no padding */

#define DMLLM_DEFAULT_MAX_IMAGE_PIXELS 178956970              /* PIL's Image.MAX_IMAGE_PIXELS */
#define DMLLM_DEFAULT_MAX_IMAGE_BYTES ((int64_t)256 << 20)     /* 256 MiB of encoded data */

/* Limits of decoding, checked before the memory they guard is allocated. A decompression bomb (a
 * small file whose header claims a huge size) and a file that never ends (/dev/zero) fail at once
 * with DMLLM_ERR_UNSUPPORTED naming the limit; a decode whose memory exceeds memory_limit_bytes
 * fails with DMLLM_ERR_OUT_OF_MEMORY naming what it needs. A negative limit fails with
 * DMLLM_ERR_INVALID_ARGUMENT naming it. */
typedef struct dmllm_image_params {
    uint32_t struct_size;          /* set by dmllm_image_params_init() */
    int64_t max_pixels;            /* width * height read from the image header (JPEG frame
                                      header, PNG IHDR, WebP, TIFF or BMP header);
                                      default DMLLM_DEFAULT_MAX_IMAGE_PIXELS; 0: only the library's
                                      hard limit of 2^28 pixels */
    int64_t max_encoded_bytes;     /* size of the file or memory block; a file is read no further
                                      than this (pipes and devices included); default
                                      DMLLM_DEFAULT_MAX_IMAGE_BYTES; 0: none */
    int64_t memory_limit_bytes;    /* peak bytes of the decode (encoded data read from a file, RGB
                                      pixels, decoder buffers, EXIF rotation); default 0: none */
} dmllm_image_params;

DMLLM_API void dmllm_image_params_init(dmllm_image_params *params);
DMLLM_API size_t dmllm_image_params_sizeof(void);

/* JPEG (EXIF orientation applied), PNG (8/16-bit, gray, palette, alpha: converted to RGB as
 * PIL's convert("RGB") does; eXIf/XMP orientation applied), WebP (EXIF orientation applied; an
 * animation's first frame), TIFF (first page, its Orientation tag applied) or BMP, told apart by
 * their first bytes, within the limits of params (NULL: dmllm_image_params_init()'s defaults).
 * A directory fails with DMLLM_ERR_IO. */
DMLLM_API dmllm_status dmllm_image_load_file_ex(const char *path, const dmllm_image_params *params,
                                                dmllm_image **out_image);
DMLLM_API dmllm_status dmllm_image_load_memory_ex(const void *data, size_t size, const dmllm_image_params *params,
                                                  dmllm_image **out_image);
/* The same with the default limits. */
DMLLM_API dmllm_status dmllm_image_load_file(const char *path, dmllm_image **out_image);
DMLLM_API dmllm_status dmllm_image_load_memory(const void *data, size_t size, dmllm_image **out_image);
/* Copies a caller buffer of height rows of width*3 RGB bytes; stride_bytes >= width*3 (0 = packed). */
DMLLM_API dmllm_status dmllm_image_from_rgb(const uint8_t *rgb, int width, int height, size_t stride_bytes,
                                            dmllm_image **out_image);
DMLLM_API int dmllm_image_width(const dmllm_image *image);
DMLLM_API int dmllm_image_height(const dmllm_image *image);
DMLLM_API const uint8_t *dmllm_image_pixels(const dmllm_image *image);
DMLLM_API void dmllm_image_free(dmllm_image *image);

/* ---- preprocessing (model-spec section 2) ------------------------------------------------------ */
typedef enum dmllm_resize_mode {
    DMLLM_RESIZE_HF = 0,     /* torchvision uint8 antialias path (int16 weights); HF parity, default */
    DMLLM_RESIZE_PILLOW = 1  /* classic Pillow 22-bit fixed point; bit-exact with PIL 9.4 */
} dmllm_resize_mode;

/* The size the model sees: both sides rounded up to multiples of 32, shrunk in 0.02 steps while
 * (h/16)*(w/16) > max_num_patches. Ends at the 32x32 floor at the latest, so max_num_patches must
 * be >= 4 (else DMLLM_ERR_INVALID_ARGUMENT). */
DMLLM_API dmllm_status dmllm_target_size(int width, int height, int max_num_patches, int *out_width,
                                         int *out_height);
/* Antialiased bilinear resize of an 8-bit RGB image. */
DMLLM_API dmllm_status dmllm_image_resize(const dmllm_image *image, int width, int height,
                                          dmllm_resize_mode mode, dmllm_image **out_image);

/* ---- sessions ---------------------------------------------------------------------------------- */
typedef struct dmllm_session dmllm_session;

/* The patch cap of the resize rule. The default (2048 image tokens) is a deliberate difference
 * from the reference, for CPU time; DMLLM_HF_MAX_NUM_PATCHES is the `max_image_patches` default of
 * the Hugging Face processor (processing_youtu_vl.py, model-spec 2.7): set it for parity and for
 * the report's dense benchmarks, whose accuracy depends on resolution. (49152 is only the default
 * of Tencent's vLLM fork.) A 3000x4000 photo: 76x100 patches by default, 166x220 at HF parity. */
#define DMLLM_DEFAULT_MAX_NUM_PATCHES 8192
#define DMLLM_HF_MAX_NUM_PATCHES 36864

typedef struct dmllm_session_params {
    uint32_t struct_size;              /* set by dmllm_session_params_init() */
    int n_threads;                     /* OpenMP threads per call; <= 0: all cores */
    int max_num_patches;               /* patch cap of the resize rule; default DMLLM_DEFAULT_MAX_NUM_PATCHES */
    dmllm_resize_mode resize_mode;     /* default DMLLM_RESIZE_HF */
    int n_ctx;                         /* KV-cache capacity in tokens; <= 0: max_num_patches/4 + 4096,
                                          capped at the model's max_position_embeddings; an explicit
                                          value above that fails with DMLLM_ERR_INVALID_ARGUMENT */
    dmllm_progress_callback progress;  /* optional; stages "vision", "llm" */
    void *progress_user_data;
    int64_t memory_limit_bytes;        /* bytes the session may hold during a call; 0 (default): the
                                          model's memory_limit_bytes (0 there too: none). See MEMORY
                                          LIMIT below. */
} dmllm_session_params;

/* MEMORY LIMIT. With a limit, dmllm_session_create() refuses a KV cache (n_ctx x layers x
 * (kv_lora_rank + qk_rope_head_dim) floats) plus fixed state that would exceed it, and every
 * call that encodes an image or evaluates tokens (dmllm_session_encode_image / _encode_pixels /
 * _eval and the calls built on them: dmllm_generate, dmllm_ask, dmllm_predict_dense, ...) first
 * computes from the shapes an upper bound of its peak allocation (resized image and resize
 * buffers, pixel values, vision activations, attention tiles, MLP chunks, merger, LLM chunk
 * activations and scratch, the kept image states) and fails at once, before allocating, with
 * DMLLM_ERR_OUT_OF_MEMORY and "<stage> needs X MiB, memory limit Y MiB (held: Z MiB)" when what
 * the session holds (KV cache, encoded image, image states) plus that bound exceeds the limit; the
 * session is then unchanged. dmllm_predict_dense (and the calls built on it) checks the same way
 * after the prefill, before its readout: the label logits and scores on the token grid, the
 * full-resolution label, confidence and depth maps, the upsampling buffers and, with the dense
 * CRF, the probability maps, energies and marginals (about 3 x channels x width x height floats)
 * and both permutohedral lattices, counted at their worst case of d+1 vertices per pixel (photos
 * use far fewer, so this bound can be several times the real peak when there are few labels);
 * the stage is "the dense readout" or "the dense CRF" of a WxH image, and the session keeps its
 * prefix. Not counted: the model's weights (see dmllm_model_params), oneDNN's matmul scratchpad
 * and JIT code, OpenBLAS and OpenMP internals, small result and prompt buffers, the masks and
 * crops of the box-prompted tasks, and dmllm_crf_refine called directly (it has no session). The
 * first call of a size also creates oneDNN primitives that stay cached (not counted either). */

DMLLM_API void dmllm_session_params_init(dmllm_session_params *params);
DMLLM_API size_t dmllm_session_params_sizeof(void);

DMLLM_API dmllm_status dmllm_session_create(const dmllm_model *model, const dmllm_session_params *params,
                                            dmllm_session **out_session);
DMLLM_API void dmllm_session_free(dmllm_session *session);
/* Message of the last failed call on this session ("" if none). */
DMLLM_API const char *dmllm_session_errmsg(const dmllm_session *session);

/* Preprocesses the image and runs the vision tower and merger. The embeddings replace those of any
 * previous image and fill the <|image_pad|> slots of the next dmllm_session_eval() calls, in order.
 * The resized size and token grid are available from dmllm_session_image_grid(). An image whose
 * tokens plus <|vision_start|> and <|vision_end|> exceed n_ctx fails with DMLLM_ERR_CONTEXT_FULL
 * before any vision work, the message naming the largest max_num_patches that fits. */
DMLLM_API dmllm_status dmllm_session_encode_image(dmllm_session *session, const dmllm_image *image);

/* Same, from caller-made pixel values: [grid_h*grid_w, 3*patch*patch] floats in 2x2-merge-block
 * patch order with (py, px, c) features (model-spec 2.5). grid_h and grid_w must be even, and every
 * value finite (else DMLLM_ERR_INVALID_ARGUMENT naming the first bad index). */
DMLLM_API dmllm_status dmllm_session_encode_pixels(dmllm_session *session, const float *pixel_values,
                                                   int grid_h, int grid_w);

/* Grid of the encoded image: patches (grid_h x grid_w), resized size in pixels, and the original
 * image size (equal to the resized size for dmllm_session_encode_pixels()). */
typedef struct dmllm_image_grid {
    uint32_t struct_size;        /* set by the caller: sizeof(dmllm_image_grid) */
    int grid_h, grid_w;          /* patches */
    int tokens_h, tokens_w;      /* merged tokens: grid/2; n_tokens = tokens_h*tokens_w */
    int resized_w, resized_h;
    int original_w, original_h;
} dmllm_image_grid;

DMLLM_API dmllm_status dmllm_session_image_grid(const dmllm_session *session, dmllm_image_grid *grid);

/* Appends tokens to the context and runs the LLM over them (prefill). Every image_token_id
 * consumes the next row of the encoded image's embeddings; an image must be complete within one
 * call. Logits are computed only for the last token. Fails with DMLLM_ERR_CONTEXT_FULL when the
 * context would overflow, leaving the session unchanged. */
DMLLM_API dmllm_status dmllm_session_eval(dmllm_session *session, const int32_t *token_ids, int n_tokens);

/* Number of tokens in the context. */
DMLLM_API int dmllm_session_n_past(const dmllm_session *session);
/* Drops every token at position >= n_keep (0 clears the context). Keeping the prefix that ends
 * with an image lets many queries reuse one encoding ("encode once, query many"). */
DMLLM_API dmllm_status dmllm_session_truncate(dmllm_session *session, int n_keep);

/* Full-vocabulary logits of the last evaluated token: out[vocab_size]. */
DMLLM_API dmllm_status dmllm_session_logits(dmllm_session *session, float *out, size_t capacity,
                                            size_t *out_count);

/* ---- intermediate results at the image -------------------------------------------------------- */
/* Which LM-head position carries the labels of image token i: its own position, or the position
 * before it (the shifted next-token convention; token 0 is then read at <|vision_start|>). */
typedef enum dmllm_alignment {
    DMLLM_ALIGN_OWN = 0,
    DMLLM_ALIGN_PREVIOUS = 1
} dmllm_alignment;

/* Pixel values of the last encoded image: rows = patches, cols = 3*patch*patch. */
DMLLM_API dmllm_status dmllm_session_pixel_values(dmllm_session *session, float *out, size_t capacity,
                                                  size_t *rows, size_t *cols);
/* Merger output of the last encoded image: rows = image tokens, cols = text hidden size. */
DMLLM_API dmllm_status dmllm_session_image_embeddings(dmllm_session *session, float *out, size_t capacity,
                                                      size_t *rows, size_t *cols);
/* Final hidden states (after the last RMSNorm, i.e. what the LM head sees) at the positions of the
 * most recently evaluated image, with the given alignment: rows = image tokens, cols = hidden. */
DMLLM_API dmllm_status dmllm_session_image_hidden(dmllm_session *session, dmllm_alignment alignment,
                                                  float *out, size_t capacity, size_t *rows, size_t *cols);
/* LM-head logits restricted to token_ids at the image positions: out[rows = image tokens][cols = n_ids].
 * Costs n_ids dot products per token; the full vocabulary is never computed. */
DMLLM_API dmllm_status dmllm_session_image_logits(dmllm_session *session, dmllm_alignment alignment,
                                                  const int32_t *token_ids, int n_ids, float *out,
                                                  size_t capacity, size_t *rows, size_t *cols);

/* ---- tokenizer ---------------------------------------------------------------------------------- */
/* The model directory's tokenizer.json (byte-level BPE, model-spec 5). These fail with
 * DMLLM_ERR_STATE when the directory has none. Text is UTF-8: invalid UTF-8 fails with
 * DMLLM_ERR_INVALID_ARGUMENT naming the byte (also in dmllm_generate_text and the task helpers). */

/* Token ids of text. With parse_special, special added tokens written in the text ("<|image_pad|>")
 * become their ids; otherwise they are tokenized as plain text. No BOS or EOS is added.
 * Size-query convention: *n_ids always receives the count. */
DMLLM_API dmllm_status dmllm_tokenize(const dmllm_model *model, const char *text, int parse_special, int32_t *ids,
                                      size_t capacity, size_t *n_ids);
/* Text of ids (invalid UTF-8 replaced by U+FFFD, as Hugging Face does), NUL-terminated; with
 * skip_special, special added tokens are left out. *length receives strlen of the result. */
DMLLM_API dmllm_status dmllm_detokenize(const dmllm_model *model, const int32_t *ids, size_t n_ids, int skip_special,
                                        char *text, size_t capacity, size_t *length);
/* Id of the token with exactly this content ("<FG>", "<custom_12>", or a byte-level vocabulary
 * piece), or -1. */
DMLLM_API int32_t dmllm_token_id(const dmllm_model *model, const char *content);
/* Raw bytes one id decodes to (possibly part of a UTF-8 character), not NUL-terminated. */
DMLLM_API dmllm_status dmllm_token_bytes(const dmllm_model *model, int32_t id, char *bytes, size_t capacity,
                                         size_t *length);

/* ---- dense prediction ------------------------------------------------------------------------- */
/* DenseMLLM's readout without a decoder (model-spec 6, 9.2-9.3): the image is encoded and
 * prefilled, then label scores are read from the LM head at the image tokens for only the label
 * token ids (class names, <FG>/<BG>, depth bins), upsampled bilinearly (as logits, or as sigmoid
 * probabilities where the profile's "interpolation" says so) and argmax'ed. Every choice
 * the report leaves open comes from the model's readout profile (readout_profile.json in the model
 * directory; defaults for youtu_vl), and the per-call fields below override it.
 *
 * Encode once, query many: with the image before the prompt (the official chat layout) the image
 * states do not depend on the prompt, so a second query on the same image (same pixels) in the same
 * session reuses the encoded prefix and costs only the readout. With the prompt before the image
 * (the report's depth benchmarks) each new prompt re-runs the LLM over the image. */
typedef enum dmllm_dense_task {
    DMLLM_TASK_SEMANTIC = 0,  /* labels = the given classes */
    DMLLM_TASK_FGBG = 1,      /* labels 0 = background (<BG>), 1 = foreground (<FG>) */
    DMLLM_TASK_DEPTH = 2      /* labels = depth bins; metres through a quantisation profile */
} dmllm_dense_task;

typedef enum dmllm_prompt_layout {
    DMLLM_LAYOUT_IMAGE_FIRST = 0,  /* official chat layout: image, then the instruction */
    DMLLM_LAYOUT_PROMPT_FIRST = 1  /* instruction, then the image (report's depth benchmarks) */
} dmllm_prompt_layout;

#define DMLLM_FROM_PROFILE (-1)

/* Which classes a semantic readout argmaxes over. NAMED is the report's two steps (Eq. 6, App.
 * A.1.5): the model first names the categories it sees (greedy generation of the reply, "The
 * target categories include <ref>c0</ref><ref>c1</ref>...", stopped at <mask>, the end of the
 * <ref> list, the end of text, or after 64 + 2 per class + the bytes of the class names tokens),
 * then only those names are read out, in the order printed. A printed name is matched to the prompt's
 * classes exactly after trimming blanks, else ignoring ASCII case; one that matches none is kept
 * (open vocabulary) and read out as printed. Repeats and <OTHERS> are dropped. A reply that names
 * nothing falls back to every prompt class. The reply is generated after the encoded image and
 * dropped again, so the image prefix stays reusable. */
typedef enum dmllm_semantic_readout {
    DMLLM_READOUT_ALL = 0,    /* every class of the prompt, in the prompt's order */
    DMLLM_READOUT_NAMED = 1   /* the classes the model names first (report 9.2) */
} dmllm_semantic_readout;

typedef struct dmllm_dense_params {
    uint32_t struct_size;           /* set by dmllm_dense_params_init() */
    dmllm_dense_task task;          /* default DMLLM_TASK_SEMANTIC */
    const char *const *class_names; /* SEMANTIC: n_classes names, tokenised with the profile's rule */
    int n_classes;
    const int32_t *label_token_ids; /* SEMANTIC alternative to names: label k averages the logits of */
    const int *label_offsets;       /* ids[offsets[k] .. offsets[k+1]-1]; offsets has n_classes + 1 */
    int background;                 /* SEMANTIC: add a background label (value n_classes) that wins
                                       where every sigmoid(scale * score) < level (App. A.1.5) */
    int evaluation;                 /* SEMANTIC, FGBG: 1 as the report's benchmarks and the official
                                       demo (use_crf): softmax(score / temperature) (or the
                                       sigmoid/background channels), the dense CRF (see crf), then
                                       the argmax and its probability as confidence; 0: plain argmax,
                                       no confidence map (faster); DMLLM_FROM_PROFILE (default): the
                                       profile's "crf" (true for youtu_vl and models/tiny) */
    dmllm_prompt_layout layout;     /* default DMLLM_LAYOUT_IMAGE_FIRST */
    const char *prompt;             /* NULL: the profile's prompt for the task */
    int alignment;                  /* DMLLM_FROM_PROFILE (default) or a dmllm_alignment */
    const char *depth_profile;      /* DEPTH: quantisation name ("nyuv2", "cityscapes", "ddad",
                                       "open_world", or the profile's own); NULL: the profile default */
    float focal_length_px;          /* DEPTH: > 0 resizes the input to a 2000 px focal length first
                                       (open-world metric depth, report 9.3); 0: as given */
    int keep_token_scores;          /* also return the label scores on the token grid */
    const struct dmllm_crf_params *crf; /* evaluation (SEMANTIC, FGBG): the dense CRF run on the
                                       full-resolution probabilities before the argmax, as the
                                       report's benchmarks (section "dense CRF"); NULL: its defaults;
                                       iterations = 0 leaves it out. Needs about 3 x n_labels x
                                       width x height floats at once. */
    int readout;                    /* SEMANTIC with class_names: a dmllm_semantic_readout, or
                                       DMLLM_FROM_PROFILE (default; youtu_vl: NAMED, report 9.2) */
} dmllm_dense_params;

DMLLM_API void dmllm_dense_params_init(dmllm_dense_params *params);
DMLLM_API size_t dmllm_dense_params_sizeof(void);

/* Allocated by the library, freed with dmllm_dense_result_free(). Maps are row-major at the
 * ORIGINAL image size unless stated. */
typedef struct dmllm_dense_result {
    dmllm_dense_task task;
    int width, height;              /* the original image */
    int n_labels;                   /* label values are 0 .. n_labels-1 (incl. background) */
    uint16_t *labels;               /* [height][width]; DEPTH: bin numbers */
    float *confidence;              /* [height][width] probability of the chosen label, or NULL */
    float *depth_m;                 /* DEPTH: [height][width] metres, else NULL */
    int depth_grid_w, depth_grid_h; /* DEPTH: (W//16) x (H//16), the official demo's grid */
    uint16_t *depth_grid_bins;      /* DEPTH: [depth_grid_h][depth_grid_w] bin numbers, else NULL */
    int tokens_w, tokens_h;         /* token grid of the encoded image */
    int n_scores;                   /* scores per token: classes, 2 (BG, FG), or depth bins */
    float *token_scores;            /* [tokens_h][tokens_w][n_scores] if keep_token_scores, else NULL */
    int reused_prefix;              /* the image prefix of an earlier query was reused */
    double seconds_encode;          /* vision tower + merger (0 when reused) */
    double seconds_prefill;         /* LLM over the prefix (0 when reused) */
    double seconds_readout;         /* label logits, upsampling, argmax */
    double seconds_crf;             /* the dense CRF (included in seconds_readout), else 0 */
    /* SEMANTIC: what the label values stand for. */
    dmllm_semantic_readout readout; /* the readout that ran (ALL when the classes came as ids) */
    int n_classes;                  /* label values 0 .. n_classes-1 are class_names[] (then the
                                       background label, value n_classes, in background mode) */
    char **class_names;             /* [n_classes] NAMED: as the model printed them, trimmed, in
                                       its order; ALL or a fallback: the prompt's; NULL with ids */
    int *prompt_index;              /* [n_classes] the class's index in dmllm_dense_params
                                       .class_names, or -1 for a printed name not in the prompt */
    int named_fallback;             /* NAMED: the reply named no class, so every prompt class was
                                       read out (class_names = the prompt's) */
    char *reply;                    /* NAMED: the generated category text the names came from */
    double seconds_generate;        /* NAMED: generating the reply */
    int crf;                        /* 1: the dense CRF refined the maps */
    /* What every label value stands for, so that callers never count or name the labels again
     * (pass label_names, n_labels and background_label straight to the overlay writer). */
    const char *const *label_names; /* [n_labels] owned by the result: SEMANTIC class_names[k] for
                                       k < n_classes (NULL entries when the classes came as
                                       label_token_ids), then "background" in background mode;
                                       FGBG "background", "foreground"; DEPTH: NULL, the labels are
                                       bin numbers (depth_m holds metres) */
    int background_label;           /* the value meaning none of the classes, which overlays leave
                                       as the photo: SEMANTIC in background mode n_classes, FGBG 0,
                                       else -1 */
} dmllm_dense_result;

DMLLM_API dmllm_status dmllm_predict_dense(dmllm_session *session, const dmllm_image *image,
                                           const dmllm_dense_params *params, dmllm_dense_result **out_result);
DMLLM_API void dmllm_dense_result_free(dmllm_dense_result *result);

/* ---- evaluation metrics (metrics.md) ------------------------------------------------------------ */
/* Accumulators for the report's benchmark metrics: semantic segmentation as mmsegmentation's
 * IoUMetric (ADE20K mIoU), depth as BTS/AdaBins/ZoeDepth compute_errors (NYUv2, DDAD) and referring
 * segmentation as LISA (RefCOCO cIoU/gIoU). Create one, add every image, then read the dataset
 * result. Values are fractions computed in double (benchmark tables print x100, 2 decimals). An
 * accumulator is used by one thread at a time; a failed add leaves it unchanged. Maps are row-major. */

/* -- semantic segmentation --
 * Per image, over pixels whose GT is not ignore_index: intersect[c] = #(pred == gt == c), pred[c] and
 * label[c] = histograms, union = pred + label - intersect. The four areas are summed over all images
 * BEFORE dividing: IoU[c] = I/U, Acc[c] = I/label, aAcc = sum I / sum label, mIoU and mAcc = mean over
 * the classes whose ratio is defined (0/0 = NaN is left out; a class predicted but absent from the GT
 * has IoU 0 and counts). Predictions outside 0..n_classes-1 (e.g. a background label) are not counted
 * in any area, as mmseg's histogram, so they only count as misses. Compare at the GT resolution. */
typedef struct dmllm_seg_metrics dmllm_seg_metrics;

typedef struct dmllm_seg_metrics_params {
    uint32_t struct_size;   /* set by dmllm_seg_metrics_params_init() */
    int n_classes;          /* GT labels are 0 .. n_classes-1; no default (0), must be 1 .. 65535 */
    int ignore_index;       /* GT value whose pixels are dropped from GT and prediction; default 255;
                               must be >= n_classes and <= 65535 */
    int reduce_zero_label;  /* raw ADE20K GT: 0 and ignore_index are ignored, v becomes v-1 (GT only,
                               as mmseg); default 0 */
} dmllm_seg_metrics_params;

DMLLM_API void dmllm_seg_metrics_params_init(dmllm_seg_metrics_params *params);
DMLLM_API size_t dmllm_seg_metrics_params_sizeof(void);

DMLLM_API dmllm_status dmllm_seg_metrics_create(const dmllm_seg_metrics_params *params, dmllm_seg_metrics **out);
/* One image: pred and gt hold n_pixels labels each, at the same (GT) resolution. A GT label that is
 * neither a class nor ignore_index fails with DMLLM_ERR_INVALID_ARGUMENT naming the pixel;
 * n_pixels 0 fails with DMLLM_ERR_SHAPE. */
DMLLM_API dmllm_status dmllm_seg_metrics_add(dmllm_seg_metrics *metrics, const uint16_t *pred, const uint16_t *gt,
                                             size_t n_pixels);
DMLLM_API void dmllm_seg_metrics_free(dmllm_seg_metrics *metrics);

/* Allocated by the library (one block), freed with dmllm_seg_result_free(). */
typedef struct dmllm_seg_result {
    int n_classes;
    int64_t n_images;
    double miou, macc, aacc;
    int n_iou_classes, n_acc_classes;   /* classes that enter mIoU / mAcc */
    double *iou, *acc;                  /* [n_classes], NaN where 0/0 */
    int64_t *area_intersect, *area_union, *area_pred, *area_label;  /* [n_classes], summed over images */
} dmllm_seg_result;

/* Fails with DMLLM_ERR_STATE before any image with a non-ignored pixel was added. */
DMLLM_API dmllm_status dmllm_seg_metrics_result(const dmllm_seg_metrics *metrics, dmllm_seg_result **out);
DMLLM_API void dmllm_seg_result_free(dmllm_seg_result *result);

/* -- depth --
 * Per image: pred is resized to the GT size when the sizes differ (bilinear, align_corners=True, as
 * ZoeDepth; a neighbour with zero weight is left out, so an inf does not spread as 0*inf = NaN), then
 * clamped: NaN and < min_depth become min_depth, > max_depth (incl. inf) max_depth.
 * Valid pixels: min_depth < gt < max_depth (strict; NaN GT is invalid) inside the crop. Over them
 * (g = gt, p = pred, e = ln p - ln g): delta_k = mean(max(g/p, p/g) < 1.25^k), abs_rel =
 * mean(|g-p|/g), sq_rel = mean((g-p)^2/g), rmse = sqrt(mean((g-p)^2)), rmse_log = sqrt(mean(e^2)),
 * log10 = mean(|log10 p - log10 g|), silog = 100 sqrt(mean(e^2) - mean(e)^2).
 * The dataset value is the mean of the per-image values (not a pixel-pooled mean); an image without
 * valid pixels is counted in n_images_empty and left out of the mean.
 * Presets: NYUv2 = 1e-3 .. 10 m with the Eigen crop; KITTI-style datasets use the Garg crop. */
typedef enum dmllm_depth_crop {
    DMLLM_DEPTH_CROP_NONE = 0,
    DMLLM_DEPTH_CROP_EIGEN = 1,  /* NYUv2: rows 45..470, cols 41..600; the GT must be 480 x 640 */
    DMLLM_DEPTH_CROP_GARG = 2    /* rows int(0.40810811 h) .. int(0.99189189 h) - 1,
                                    cols int(0.03594771 w) .. int(0.96405229 w) - 1 */
} dmllm_depth_crop;

typedef struct dmllm_depth_metrics_params {
    uint32_t struct_size;  /* set by dmllm_depth_metrics_params_init() */
    double min_depth;      /* metres, > 0; default 1e-3 */
    double max_depth;      /* metres, > min_depth; default 10 (NYUv2) */
    dmllm_depth_crop crop; /* default DMLLM_DEPTH_CROP_NONE */
} dmllm_depth_metrics_params;

DMLLM_API void dmllm_depth_metrics_params_init(dmllm_depth_metrics_params *params);
DMLLM_API size_t dmllm_depth_metrics_params_sizeof(void);

typedef struct dmllm_depth_metrics dmllm_depth_metrics;

DMLLM_API dmllm_status dmllm_depth_metrics_create(const dmllm_depth_metrics_params *params,
                                                  dmllm_depth_metrics **out);
/* One image: pred[pred_h][pred_w] and gt[gt_h][gt_w] in metres. A side < 1 fails with DMLLM_ERR_SHAPE. */
DMLLM_API dmllm_status dmllm_depth_metrics_add(dmllm_depth_metrics *metrics, const float *pred, int pred_w,
                                               int pred_h, const float *gt, int gt_w, int gt_h);
/* Same for double maps (e.g. float64 ground truth). */
DMLLM_API dmllm_status dmllm_depth_metrics_add_f64(dmllm_depth_metrics *metrics, const double *pred, int pred_w,
                                                   int pred_h, const double *gt, int gt_w, int gt_h);
DMLLM_API void dmllm_depth_metrics_free(dmllm_depth_metrics *metrics);

typedef struct dmllm_depth_scores {
    uint32_t struct_size;     /* set by the caller: sizeof(dmllm_depth_scores) */
    int64_t n_images;         /* images in the mean */
    int64_t n_images_empty;   /* images without valid pixels, left out */
    int64_t n_pixels;         /* valid pixels over all images */
    double delta1, delta2, delta3, abs_rel, sq_rel, rmse, rmse_log, log10, silog;
} dmllm_depth_scores;

/* Fails with DMLLM_ERR_STATE while no image with valid pixels was added. */
DMLLM_API dmllm_status dmllm_depth_metrics_result(const dmllm_depth_metrics *metrics, dmllm_depth_scores *out);

/* -- referring segmentation (LISA) --
 * Per sample i, binary masks at the original image resolution: I_i and U_i of the foreground over
 * pixels whose GT is not 255. cIoU = sum I / sum U (0 when every union is empty, as LISA);
 * gIoU = mean_i I_i/U_i with an empty union (no target, nothing predicted) scoring 1. LISA's
 * epsilons (1e-10, 1e-5 in the denominators) are left out: they shift gIoU by < 1e-5 / U_i. */
typedef struct dmllm_mask_metrics dmllm_mask_metrics;

DMLLM_API dmllm_status dmllm_mask_metrics_create(dmllm_mask_metrics **out);
/* pred values 0/1, gt values 0/1/255 (ignore); anything else fails naming the pixel. */
DMLLM_API dmllm_status dmllm_mask_metrics_add(dmllm_mask_metrics *metrics, const uint8_t *pred, const uint8_t *gt,
                                              size_t n_pixels);
DMLLM_API void dmllm_mask_metrics_free(dmllm_mask_metrics *metrics);

typedef struct dmllm_mask_scores {
    uint32_t struct_size;     /* set by the caller: sizeof(dmllm_mask_scores) */
    int64_t n_samples;
    int64_t sum_intersection, sum_union;
    double ciou, giou;
} dmllm_mask_scores;

/* Fails with DMLLM_ERR_STATE before the first sample. */
DMLLM_API dmllm_status dmllm_mask_metrics_result(const dmllm_mask_metrics *metrics, dmllm_mask_scores *out);

/* -- grounding boxes --
 * IoU of two boxes (x0, y0, x1, y1) in continuous pixel coordinates: x1, y1 are the far edges and
 * the area is (x1-x0)(y1-y0) with no +1 (COCO, torchvision). Boxes need x0 <= x1, y0 <= y1 and
 * finite values; two boxes with zero union score 0. */
DMLLM_API dmllm_status dmllm_box_iou(const double box_a[4], const double box_b[4], double *out_iou);

/* ---- outputs ----------------------------------------------------------------------------------- */
/* Files and text made from dense predictions, for the CLI and the bindings. Every PNG is written
 * atomically: the bytes go to "<path>.tmp.<pid>", which is renamed over path only once complete
 * and removed on any failure (so two threads of one process must not write the same path at once).
 * Label maps are row-major uint16 [height][width], as in dmllm_dense_result. */

/* Colour of a label in the PASCAL VOC palette, computed by bit interleaving: bit 3j+c of the label
 * (c = 0 red, 1 green, 2 blue; j = 0..7) becomes bit 7-j of channel c. Label 0 is black, then
 * (128,0,0), (0,128,0), (128,128,0), (0,0,128), ...; every label below 2^24 gets its own colour.
 * It colours the label-map PNGs (tools that read VOC-style masks expect it); overlays use
 * dmllm_overlay_color. Labels outside 0 .. 2^24-1 fail with DMLLM_ERR_INVALID_ARGUMENT. */
DMLLM_API dmllm_status dmllm_label_color(int label, uint8_t rgb[3]);

/* Colour of a label in overlays: light, moderately saturated colours that read on photos, none
 * dark (Rec. 709 luminance of the sRGB values >= 100 of 255), none dark olive or brick. Labels
 * 0..15 come from a fixed table of OKLab lightness and hue (twelve hue families, neighbours in
 * label order far apart); label 16 + j walks the hue circle by the golden angle (137.508 degrees
 * from 20) at lightness 0.86 / 0.72 for even / odd j, so later labels are less distinct. Chroma
 * is 0.15, lowered in steps of 0.005 until the colour fits sRGB. Labels outside 0 .. 65535 fail
 * with DMLLM_ERR_INVALID_ARGUMENT. */
DMLLM_API dmllm_status dmllm_overlay_color(int label, uint8_t rgb[3]);

/* The label map as a PNG whose pixel values are the labels: 8-bit palette (the colours of
 * dmllm_label_color, n_labels PLTE entries) when n_labels <= 256, else 16-bit grayscale.
 * n_labels: 1 .. 65536; every label must be below it. */
DMLLM_API dmllm_status dmllm_write_label_png(const char *path, const uint16_t *labels, int width, int height,
                                             int n_labels);

#define DMLLM_AUTO (-1) /* an overlay size computed from the image size */

typedef struct dmllm_overlay_params {
    uint32_t struct_size;         /* set by dmllm_overlay_params_init() */
    float alpha;                  /* weight of the label colour, 0 .. 1; default 0.5 */
    int background_label;         /* label left as the photo (no colour, outline or legend row), or
                                     -1: none (default) */
    int outline_px;               /* width of the outline drawn in full colour along the inside of
                                     every label region's border, 0 (none) .. 64, or DMLLM_AUTO
                                     (default): max(1, min(width, height) / 400) */
    int legend;                   /* 1 (default): the legend in a panel right of the image; 0 none */
    const struct dmllm_region *const *boxes; /* [n_boxes] pointers to boxes drawn with their label
                                     on a tag (dmllm_regions.regions fits), or NULL */
    int n_boxes;                  /* >= 0, boxes and each boxes[i] not NULL when > 0; default 0 */
} dmllm_overlay_params;

DMLLM_API void dmllm_overlay_params_init(dmllm_overlay_params *params);
DMLLM_API size_t dmllm_overlay_params_sizeof(void);

/* The image with every pixel blended toward its label's colour (dmllm_overlay_color), out =
 * (1-alpha)*image + alpha*colour, except background_label pixels, which keep the image's values.
 * An outline in full colour runs along the inside of each label region's border (image edges are
 * not borders). Boxes (x0, y0, x1, y1 in image pixels, x1, y1 exclusive, clamped to the image)
 * get a frame max(2, min(width, height) / 250) px wide and their label (trimmed: "" draws no tag)
 * in the text colour (black or white, whichever reads better) on a tag filled with the frame
 * colour above the box (inside it when the box touches the top); the colour is that of the
 * first label k whose names[k] equals the box's label, else that of label n_labels + i for the
 * i-th distinct other box label. With legend, the picture is widened by a dark panel on the right
 * with one row per label present in the map (background_label left out), in label order: a colour
 * swatch and the name, both at the integer text scale max(1, (min(width, height) + 150) / 300) of a
 * built-in 5x7 pixel font; the picture is made taller when the rows need it (at most
 * max(40, rows the image height holds) rows, the last saying "+N more"). names: n_labels strings,
 * or NULL (then and for a NULL entry the row says "label N"); bytes outside printable ASCII show
 * as '?'. labels: [height][width] of the image's size, every label below n_labels (1 .. 65536),
 * or NULL with n_labels 0 (boxes only). A result's labels, n_labels, label_names and
 * background_label fit labels, n_labels, names and params->background_label as they are.
 * params NULL: dmllm_overlay_params_init(). */
DMLLM_API dmllm_status dmllm_write_overlay_png_v2(const char *path, const dmllm_image *image,
                                                  const uint16_t *labels, int n_labels,
                                                  const char *const *names,
                                                  const dmllm_overlay_params *params);

/* dmllm_write_overlay_png_v2 with the default params and the given alpha. */
DMLLM_API dmllm_status dmllm_write_overlay_png(const char *path, const dmllm_image *image, const uint16_t *labels,
                                               int n_labels, const char *const *names, float alpha);

#define DMLLM_DEPTH_PNG_SCALE 1000.0f /* units per metre of dmllm_write_depth_png16: millimetres */

/* Depth as 16-bit grayscale: value = round(depth_m * scale) clamped to 0 .. 65535, NaN -> 0.
 * scale 0 selects DMLLM_DEPTH_PNG_SCALE; a negative or non-finite scale fails. */
DMLLM_API dmllm_status dmllm_write_depth_png16(const char *path, const float *depth_m, int width, int height,
                                               float scale);

/* Depth as an 8-bit RGB colour map, near = warm, far = cool: t = (depth - min_m)/(max_m - min_m)
 * clamped to [0, 1], coloured piecewise-linearly through five stops at t = 0, 1/4, 1/2, 3/4, 1:
 * (252,236,140) pale yellow, (250,170,70) orange, (225,105,100) red, (130,60,150) purple,
 * (25,30,95) navy. Their luminance (Rec. 709 weights) falls in near-equal steps from 232 to 34, so
 * the order survives grayscale. Pixels that are not finite or not > 0 are black. min_m <= 0 or
 * max_m <= 0 takes that end from the valid depths (2nd / 98th percentile, linear interpolation);
 * a range that is then empty maps every valid pixel to t = 0. Given min_m >= max_m fails. */
DMLLM_API dmllm_status dmllm_write_depth_color_png(const char *path, const float *depth_m, int width, int height,
                                                   float min_m, float max_m);

/* The colour map of dmllm_write_depth_color_png (same range rule) with a colour bar in a dark panel
 * on its right: near at the bottom, far at the top, tick marks and labels in metres at round steps
 * (1, 2 or 5 times a power of ten, at least three ticks), text at the legend scale of
 * dmllm_write_overlay_png_v2. A fixed min_m and max_m give a batch of images one scale. */
DMLLM_API dmllm_status dmllm_write_depth_colorbar_png(const char *path, const float *depth_m, int width,
                                                      int height, float min_m, float max_m);

/* PCA picture of vision-token features (DenseMLLM report, Figure 4): features [rows][cols] with
 * rows = grid_w*grid_h tokens in row-major grid order (e.g. dmllm_session_image_hidden()). The rows
 * are centred; the top three principal components (power iteration with deflation, start vectors
 * fixed, each component's largest-magnitude coefficient made positive) give each token three
 * scores, each min-max scaled to 0 .. 255 as red, green, blue (a component without variance is 0).
 * The grid is enlarged to out_w x out_h by nearest neighbour (out_w or out_h <= 0: grid size).
 * rows != grid_w * grid_h or cols < 1 fails with DMLLM_ERR_SHAPE. */
DMLLM_API dmllm_status dmllm_write_pca_png(const char *path, const float *features, int rows, int cols, int grid_w,
                                           int grid_h, int out_w, int out_h);

/* The PCA picture of dmllm_write_pca_png blended over the image, as the report's Figure 4 shows
 * features: the token colours are resized bilinearly (align_corners = false) from the grid to the
 * image's size, then out = (1-alpha)*image + alpha*pca (alpha in [0, 1]). */
DMLLM_API dmllm_status dmllm_write_pca_overlay_png(const char *path, const dmllm_image *image,
                                                   const float *features, int rows, int cols, int grid_w,
                                                   int grid_h, float alpha);

/* The official dense text of Youtu-VL (model-spec 6.1): "<ref>name</ref>" for each label in label
 * order, then "<mask>(v,n)(v,n)...</mask>": runs of value v repeated n times, row-major over the
 * map, no separators. With names == NULL only the <mask> block is written (the official depth
 * answer puts "<depth>" before it). names: n_labels strings without "</ref>". The text is freed
 * with dmllm_text_free(). */
DMLLM_API dmllm_status dmllm_mask_text_write(const uint16_t *labels, int width, int height,
                                             const char *const *names, int n_labels, char **out_text);

typedef struct dmllm_mask_text_result {
    int width, height;
    uint16_t *labels;   /* [height][width] */
    int n_names;        /* <ref> entries, in text order; labels index them when n_names > 0 */
    char **names;       /* [n_names] NUL-terminated */
    int has_depth_tag;  /* the text holds "<depth>" */
} dmllm_mask_text_result;

/* Parses dense text back into a width x height map. Accepted: whitespace, "<ref>name</ref>"
 * (a name may hold '<', as "<FG>" does), "<depth>", and exactly one "<mask>...</mask>" holding
 * either runs "(v,n)" (whitespace allowed inside as the official demo's regex does, whitespace or
 * commas between) or the demo's expanded "v,v,v,...". Anything else, a value above 65535 or not
 * below n_names, a run of 0, or runs not covering exactly width*height values fails with
 * DMLLM_ERR_FORMAT and a message naming the byte offset. Labels keep the text's order (the demo's
 * "<FG>"-first flip is left to the caller). Freed with dmllm_mask_text_result_free(). */
DMLLM_API dmllm_status dmllm_mask_text_parse(const char *text, int width, int height,
                                             dmllm_mask_text_result **out_result);
DMLLM_API void dmllm_mask_text_result_free(dmllm_mask_text_result *result);

/* ---- chat template (model-spec 4.8) ------------------------------------------------------------ */
/* One turn of a conversation. A conversation that does not start with a system turn gets
 * DMLLM_DEFAULT_SYSTEM_PROMPT. A turn with has_image holds one image block, placed before its text
 * (DMLLM_LAYOUT_IMAGE_FIRST, the official layout) or after it (DMLLM_LAYOUT_PROMPT_FIRST). */
typedef struct dmllm_chat_message {
    uint32_t struct_size;        /* set by the caller: sizeof(dmllm_chat_message), the same in every
                                    element of an array (it is the array's stride) */
    const char *role;            /* "system", "user" or "assistant" */
    const char *text;            /* UTF-8; NULL = "" */
    int has_image;
    dmllm_prompt_layout layout;  /* where the image goes when has_image */
} dmllm_chat_message;

#define DMLLM_DEFAULT_SYSTEM_PROMPT "You are a helpful assistant."

/* The prompt text: every turn as <|begin_of_text|>ROLE\nTEXT<|end_of_text|>\n, each image as
 * <|vision_start|>, n_image_tokens x <|image_pad|>, <|vision_end|> (n_image_tokens 1 .. 262144, the
 * tokens of a 2^28-pixel image, when a turn has an image: the encoded image's tokens_h * tokens_w,
 * or 1 for the template's own text), then
 * <|begin_of_text|>assistant\n when add_generation_prompt. Free *out_text with dmllm_text_free(). */
DMLLM_API dmllm_status dmllm_chat_apply(const dmllm_chat_message *messages, int n_messages, int add_generation_prompt,
                                        int n_image_tokens, char **out_text);
/* The same prompt as token ids (special tokens recognised); size-query convention as dmllm_tokenize. */
DMLLM_API dmllm_status dmllm_chat_tokenize(const dmllm_model *model, const dmllm_chat_message *messages,
                                           int n_messages, int add_generation_prompt, int n_image_tokens,
                                           int32_t *ids, size_t capacity, size_t *n_ids);

/* ---- text generation (model-spec 4.9) ---------------------------------------------------------- */
/* Called for each generated token with the complete UTF-8 characters it adds to the text (maybe
 * none: a character split over tokens is given with the token that completes it), and once more
 * with token_id = -1 for bytes still pending at the end (as U+FFFD). text is "" when the model has
 * no tokenizer. Return non-zero to stop: the call then succeeds with DMLLM_STOP_CALLBACK. */
typedef int (*dmllm_token_callback)(int32_t token_id, const char *text, size_t length, void *user_data);

/* The defaults are the official decoding (demo: temperature 0.1, top_p 0.001, which keeps only the
 * most likely token, i.e. greedy; repetition penalty 1.05; at most 4096 new tokens). */
typedef struct dmllm_generate_params {
    uint32_t struct_size;          /* set by dmllm_generate_params_init() */
    int max_new_tokens;            /* default 4096; >= 1 */
    int do_sample;                 /* 0 (default): argmax of the penalised logits; non-zero: temperature,
                                      top_k, top_p as Hugging Face applies them, then a seeded draw */
    float temperature;             /* > 0; default 1 */
    int top_k;                     /* 0 (default): off */
    float top_p;                   /* (0, 1]; default 1: off */
    float repetition_penalty;      /* > 0; default 1.05; 1: off. Over every id in the context, as HF's
                                      RepetitionPenaltyLogitsProcessor over input_ids */
    uint64_t seed;                 /* of the draws; default 0 */
    const int32_t *stop_ids;       /* NULL (default): each id of config.json's eos_token_id
                                      (one id, <|end_of_text|>, or a list) */
    int n_stop_ids;
    int skip_special;              /* the text leaves out special tokens; default 1 (as the demo) */
    int rescale_coordinates;       /* default 1: when the context holds an image, <x_k>/<y_k> in the
                                      output are mapped from resized-image to original-image pixels, as
                                      HF generate does with img_input (model-spec 4.9); the model itself
                                      keeps seeing what it generated */
    dmllm_token_callback on_token; /* optional streaming */
    void *user_data;
} dmllm_generate_params;

DMLLM_API void dmllm_generate_params_init(dmllm_generate_params *params);
DMLLM_API size_t dmllm_generate_params_sizeof(void);

typedef enum dmllm_stop_reason {
    DMLLM_STOP_TOKEN = 0,          /* a stop id was generated (not part of the output) */
    DMLLM_STOP_MAX_TOKENS = 1,     /* max_new_tokens reached */
    DMLLM_STOP_CALLBACK = 2,       /* on_token returned non-zero */
    DMLLM_STOP_CONTEXT_FULL = 3    /* the session's context has no room for the next token */
} dmllm_stop_reason;

typedef struct dmllm_generate_result {
    int32_t *ids;                  /* [n_ids] generated ids, without the stop id; rescaled coordinates */
    int n_ids;
    char *text;                    /* the ids decoded, NUL-terminated; NULL when the model has no tokenizer */
    dmllm_stop_reason stop_reason;
    int32_t stop_id;               /* the stop id met, or -1 */
    int n_prompt;                  /* prompt ids this call evaluated */
    double seconds_prompt;         /* evaluating them */
    double seconds_generate;       /* the decode steps */
} dmllm_generate_result;

/* Evaluates prompt_ids (n_prompt may be 0 to continue from the logits of the last evaluated token),
 * then decodes one token at a time. Afterwards the context holds the prompt and every generated
 * token but the last (which, as in HF generate, is never evaluated). Aborting through the session's
 * progress callback (stage "generate", done = tokens so far) fails with DMLLM_ERR_ABORTED; on any
 * failure the context is rolled back to where it was. */
DMLLM_API dmllm_status dmllm_generate(dmllm_session *session, const int32_t *prompt_ids, int n_prompt,
                                      const dmllm_generate_params *params, dmllm_generate_result **out_result);
/* The same from prompt text (special tokens such as <|image_pad|> recognised). */
DMLLM_API dmllm_status dmllm_generate_text(dmllm_session *session, const char *prompt,
                                           const dmllm_generate_params *params, dmllm_generate_result **out_result);
DMLLM_API void dmllm_generate_result_free(dmllm_generate_result *result);

/* Coordinate k of a <x_k>/<y_k> token (pixels of the resized image the model saw) in pixels of the
 * original image, as HF generate maps it: clamp(round-half-even(k * original / resized), 0, 2047). */
DMLLM_API dmllm_status dmllm_coordinate_to_original(int k, int original_size, int resized_size, int *out_k);

/* ---- text tasks and their answers (model-spec 6.1, demo output formats) ------------------------- */
/* A box or polygon of a grounding / detection answer. Coordinates are as written in the text; with
 * the task helpers below (rescale_coordinates on) pixels of the original image, clamped to
 * [0, width] x [0, height] (the model may name a coordinate past the edge; the text keeps it).
 * Results hold their regions as an array of pointers, each region allocated on its own, so that
 * the struct can grow: a caller built against an older, shorter dmllm_region still indexes the
 * array correctly and finds the fields it knows (struct_size says how many the library filled).
 * Overlay boxes take such an array too, so a result's regions can be drawn as they are. */
typedef struct dmllm_region {
    uint32_t struct_size; /* sizeof(dmllm_region): set by the library in results, by the caller in
                             dmllm_overlay_params.boxes (the library reads that many bytes) */
    const char *label;   /* the <ref>NAME</ref> before it, trimmed; "" when none; owned by the result */
    int box[4];          /* x0, y0, x1, y1 of <box><x_><y_><x_><y_></box>; a polygon's bounding box */
    int n_points;        /* vertices of an <ins>[<poly>]<x_><y_>...[</poly>]</ins> polygon; 0 for a box */
    const int *points;   /* [n_points][2] x, y; owned by the result */
} dmllm_region;

typedef struct dmllm_regions {
    int n_regions;
    dmllm_region **regions; /* [n_regions] pointers, in the order of the text; owned by this */
    char *text;             /* the model's answer (task helpers); NULL from dmllm_parse_regions */
    char message[256];      /* "" when the text parsed cleanly; else how many malformed items were
                               skipped and what was wrong with the first */
} dmllm_regions;

/* Parses an answer in the official formats: <ref>name</ref> followed by any number of
 * <box>...</box> (detection, grounding) or <ins>...</ins> polygons (referring segmentation).
 * Malformed items (unterminated tags, a box without exactly <x><y><x><y>, coordinates beyond 2047)
 * are skipped and described in message; the call itself fails only for a NULL argument or memory. */
DMLLM_API dmllm_status dmllm_parse_regions(const char *text, dmllm_regions **out_regions);
DMLLM_API void dmllm_regions_free(dmllm_regions *regions);

/* Answers a question about an image (NULL: text only) in the official chat layout: the image prefix
 * of an earlier call on the same pixels is reused. params NULL: dmllm_generate_params_init(). */
DMLLM_API dmllm_status dmllm_ask(dmllm_session *session, const dmllm_image *image, const char *question,
                                 const dmllm_generate_params *params, dmllm_generate_result **out_result);
/* The box of the region a phrase describes (demo prompt "Please provide the bounding box coordinate
 * of the region this sentence describes: <phrase>"), parsed with dmllm_parse_regions. */
DMLLM_API dmllm_status dmllm_ground(dmllm_session *session, const dmllm_image *image, const char *phrase,
                                    const dmllm_generate_params *params, dmllm_regions **out_regions);
/* Every object with its class: all objects ("Detect all objects in the provided image.") when
 * n_classes is 0, else only the given categories (the demo's "Detect every objects that belongs to
 * the following categories: a,b,c"). */
DMLLM_API dmllm_status dmllm_detect(dmllm_session *session, const dmllm_image *image, const char *const *classes,
                                    int n_classes, const dmllm_generate_params *params, dmllm_regions **out_regions);

/* ---- box-prompted segmentation: referring and open-set (model-spec 6.1, report 9.2) ------------- */
/* The demo's and the report's second stage: the box scaled by `padding` about its centre and clamped
 * to the image is cropped, the box outline drawn on the crop (box_px wide, box_rgb), the crop resized
 * (session resize mode) so its short side is short_side with both sides rounded half-to-even to
 * multiples of 32, "Segment the core target." read out as <FG>/<BG>, and the FG mask pasted back
 * with nearest-neighbour sampling. DMLLM_FROM_PROFILE takes the value of the readout profile
 * (crop_padding 1.2, crop_short_side 1280, crop_box_px 1 for youtu_vl). Boxes are x0, y0, x1, y1
 * in original-image pixels with x1, y1 exclusive (DMLLM_VARIANT_DEMO: inclusive). */
typedef enum dmllm_crop_variant {
    /* Report App. A.1.6 (default): referring starts from the grounding box; the padded crop's
     * edges are rounded outwards and the box's far edges are exclusive. The report evaluates this
     * path (RefCOCO cIoU), so it is the default. */
    DMLLM_VARIANT_REPORT = 0,
    /* demo.py: referring asks 'Can you segment "X" in this image?' and takes the bounding box of
     * the first <ins> polygon of the answer; the padded crop's edges are truncated (floor, as
     * int()) and the box's far edges are inclusive (the outline drawn on them). Open-set and
     * dmllm_segment_box boxes are cropped the same way. */
    DMLLM_VARIANT_DEMO = 1
} dmllm_crop_variant;

typedef struct dmllm_crop_params {
    uint32_t struct_size;                   /* set by dmllm_crop_params_init() */
    float padding;                          /* >= 1, or DMLLM_FROM_PROFILE (default) */
    int short_side;                         /* 32 .. 16384, or DMLLM_FROM_PROFILE (default) */
    int box_px;                             /* 0 (no outline) .. 64, or DMLLM_FROM_PROFILE (default) */
    uint8_t box_rgb[3];                     /* outline colour; default red (the demo draws a random one) */
    int max_regions;                        /* open-set: the largest boxes kept; default 30 (demo) */
    const dmllm_generate_params *generate;  /* grounding / detection decoding; NULL: the defaults */
    int evaluation;                         /* FG/BG with the dense CRF as the demo and the report:
                                               dmllm_dense_params.evaluation; default
                                               DMLLM_FROM_PROFILE (on for youtu_vl), 0: off */
    const struct dmllm_crf_params *crf;     /* with evaluation: dmllm_dense_params.crf */
    dmllm_crop_variant variant;             /* which published path; default DMLLM_VARIANT_REPORT */
} dmllm_crop_params;

DMLLM_API void dmllm_crop_params_init(dmllm_crop_params *params);
DMLLM_API size_t dmllm_crop_params_sizeof(void);

/* FG/BG inside one box: mask[height][width] of the original image gets 1 on the foreground, 0
 * elsewhere (capacity >= width * height bytes). */
DMLLM_API dmllm_status dmllm_segment_box(dmllm_session *session, const dmllm_image *image, const int box[4],
                                         const dmllm_crop_params *params, uint8_t *mask, size_t capacity);

/* Referring segmentation: the grounding answer's first box for the phrase (DMLLM_VARIANT_DEMO: the
 * box of the first polygon of the demo's answer), then dmllm_segment_box.
 * When the answer holds no usable box the call succeeds with found = 0, an empty mask and a message. */
typedef struct dmllm_refer_result {
    int width, height;      /* the original image */
    uint8_t *mask;          /* [height][width] 1 = the referred object */
    int found;              /* the grounding answer held a box */
    int box[4];             /* that box (clamped to the image) */
    char *answer;           /* the grounding answer text */
    char message[256];      /* why nothing was segmented, or "" */
    int crf;                /* 1: the dense CRF refined the mask */
    int n_labels;           /* 2: the mask values 0 (background) and 1 (the referred object) */
    const char *const *label_names; /* [n_labels] "background", the phrase; owned by the result */
} dmllm_refer_result;

DMLLM_API dmllm_status dmllm_refer_segment(dmllm_session *session, const dmllm_image *image, const char *phrase,
                                           const dmllm_crop_params *params, dmllm_refer_result **out_result);
DMLLM_API void dmllm_refer_result_free(dmllm_refer_result *result);

/* Open-set segmentation as the demo does it: without categories from the caller, the model first
 * names them (the readout profile's openset prompt, "Segment all objects in this image." for
 * youtu_vl: the <ref> names before <mask>, <OTHERS> left out; all objects when it names none or
 * the profile's prompt is ""), then dmllm_detect finds their boxes (report: detect ->
 * box prompt -> FG/BG, the more accurate of the two open-world modes), and the max_regions largest
 * boxes are segmented with dmllm_segment_box, smaller boxes painted over larger ones. Label 0 is
 * background, label k the class names[k-1] (in order of first appearance, largest box first). */
typedef struct dmllm_openset_result {
    int width, height;
    uint16_t *labels;          /* [height][width] */
    int n_names;
    char **names;              /* [n_names] */
    dmllm_regions *regions;    /* the detection answer the boxes came from */
    int crf;                   /* 1: the dense CRF refined the masks */
    int n_labels;              /* n_names + 1: label values 0 .. n_names, 0 the background */
    const char *const *label_names; /* [n_labels] "background", then names[]; owned by the result */
} dmllm_openset_result;

DMLLM_API dmllm_status dmllm_openset_segment(dmllm_session *session, const dmllm_image *image,
                                             const char *const *classes, int n_classes,
                                             const dmllm_crop_params *params, dmllm_openset_result **out_result);
DMLLM_API void dmllm_openset_result_free(dmllm_openset_result *result);

/* ---- dense CRF (report App. A.1.5, model-spec 6.5) --------------------------------------------- */
/* The fully connected CRF of Kraehenbuehl & Koltun (2011) as pydensecrf's DenseCRF2D runs it: unary
 * -log(max(p, 1e-5)); a Gaussian kernel exp(-|dp|^2 / (2 sxy^2)) over pixel positions and a
 * bilateral kernel exp(-|dp|^2 / (2 sxy^2) - |dI|^2 / (2 srgb^2)) over positions and RGB, each
 * normalised symmetrically (D^-1/2 K D^-1/2, D = K 1) and weighted by its compat; Potts labels;
 * mean field Q_i(l) proportional to exp(log p_i(l) + sum over kernels of compat [K~ Q](i, l)). The
 * kernel sums are computed on a permutohedral lattice (Adams et al. 2010), an approximation of the
 * exact Gaussian sums in O(pixels x labels) per iteration. The report gives no parameters; the
 * defaults are model-spec 6.5's. */
typedef struct dmllm_crf_params {
    uint32_t struct_size;     /* set by dmllm_crf_params_init() */
    int iterations;           /* mean-field updates, 0 .. 1000; default 5; 0 returns the (clipped,
                                 renormalised) input */
    float gaussian_sxy;       /* pixels, > 0; default 3 */
    float gaussian_compat;    /* >= 0 (0: no Gaussian kernel); default 3 */
    float bilateral_sxy;      /* pixels, > 0; default 80 */
    float bilateral_srgb;     /* RGB levels, > 0; default 13 */
    float bilateral_compat;   /* >= 0 (0: no bilateral kernel); default 10 */
} dmllm_crf_params;

DMLLM_API void dmllm_crf_params_init(dmllm_crf_params *params);
DMLLM_API size_t dmllm_crf_params_sizeof(void);

/* Refines probabilities[height][width][n_labels] (of the image's size; values finite and >= 0, each
 * pixel's summing to 1 is not required) into out_probabilities of the same shape, which may be the
 * same buffer. params NULL: the defaults. Memory: 2 x n_labels x width x height floats plus about
 * 300 bytes per pixel (lattices, label blocks); time grows linearly in pixels x labels (683 x 512
 * pixels, 5 iterations, 2 cores: about 2 s for 21 labels, 12 s for ADE20K's 150). The permutohedral lattice is pydensecrf's
 * approximation: in 2-D it is close to the exact Gaussian sums, in 5-D its kernel is somewhat wider. */
DMLLM_API dmllm_status dmllm_crf_refine(const dmllm_image *image, const float *probabilities, int n_labels,
                                        const dmllm_crf_params *params, float *out_probabilities);

/* ---- annotation files ----------------------------------------------------------------------- */
/* A grayscale or palette PNG's raw sample values, as numpy.array(PIL.Image.open(path)) holds them
 * for modes L, P and I;16: class-index maps (ADE20K annotations, dmllm_write_label_png output),
 * 16-bit depth (NYUv2: millimetres). Palette PNGs give the indices, gray+alpha the gray samples,
 * 1-bit gray 0/1, 2- and 4-bit gray scaled to 0..255 (as PIL). RGB PNGs fail with
 * DMLLM_ERR_UNSUPPORTED. Freed with dmllm_png_values_free(). */
typedef struct dmllm_png_values {
    int width, height;
    int bit_depth;          /* of the file: 1, 2, 4, 8 or 16 */
    int palette;            /* the values are palette indices */
    uint16_t *values;       /* [height][width] */
} dmllm_png_values;

DMLLM_API dmllm_status dmllm_read_png_values(const char *path, dmllm_png_values **out_values);
DMLLM_API void dmllm_png_values_free(dmllm_png_values *values);

#ifdef __cplusplus
}
#endif
#endif /* DENSEMLLM_H */
