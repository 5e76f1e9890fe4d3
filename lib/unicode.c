/*
 * unicode.c: category and White_Space lookups over the generated tables, UTF-8 decode/encode.
 * Pure functions.
 */
#include "unicode.h"

static int find_range(const dmllm_unicode_range *ranges, int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2;
        if (cp < ranges[mid].first) hi = mid - 1;
        else if (cp > ranges[mid].last) lo = mid + 1;
        else return mid;
    }
    return -1;
}

dmllm_unicode_category dmllm_unicode_category_of(uint32_t cp) {
    if (cp < 0x80) { /* the common case, without the search */
        if (cp >= 'a' && cp <= 'z') return DMLLM_UC_Ll;
        if (cp >= 'A' && cp <= 'Z') return DMLLM_UC_Lu;
        if (cp >= '0' && cp <= '9') return DMLLM_UC_Nd;
        return DMLLM_UC_OTHER;
    }
    const int i = find_range(dmllm_unicode_categories, dmllm_unicode_n_categories, cp);
    return i < 0 ? DMLLM_UC_OTHER : (dmllm_unicode_category)dmllm_unicode_categories[i].category;
}

bool dmllm_unicode_is_white_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return find_range(dmllm_unicode_white_space, dmllm_unicode_n_white_space, cp) >= 0;
}

int dmllm_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
    *cp = 0xFFFD;
    if (len == 0) return 0;
    const unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)n > len) return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

int dmllm_utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}
