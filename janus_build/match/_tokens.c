/* The hot loop of janus match: ASCII captions to term-word ids in one pass.
 *
 * janus_build/match/native.py loads this through ctypes; janus_build/match/matcher.py keeps
 * the numpy + Arrow path it replaces, which gives the same ids (tests/test_match_native.py),
 * and which runs wherever this library was not built.
 *
 * For each caption (row) of an Arrow string array: a row holding any non-ASCII byte is flagged
 * and left to the Arrow path (NFKC, Unicode separators); a row with a markup hint ('<', '&',
 * "://", "www.", as the Arrow path's _MARKUP_HINT on lower-cased text) is flagged so the caller
 * removes HTML and URLs with Arrow's regex and passes it here again. Every other row is cut
 * into tokens as janus_build.text.normalize does for ASCII: lower-cased, apostrophes (' and `)
 * deleted, runs of a-z0-9 kept, anything else a separator; each token's term-word id is looked
 * up (exact byte comparison behind a FNV-1a hash) in the open-addressing table built by
 * native.py from the term table's candidate tokens. Output: one id (0 = no term word) and the
 * row of every token, in caption order.
 */
#include <stdint.h>

#define MAX_TOKEN 256 /* a longer token is no term word: it gets id 0 */
#define FLAG_NON_ASCII 1 /* flags[r]: the general path (NFKC, Unicode separators) */
#define FLAG_MARKUP 2    /* ASCII with a markup hint: HTML and URLs removed, then tokenised here */

static const uint64_t FNV_OFFSET = 14695981039346656037ULL;
static const uint64_t FNV_PRIME = 1099511628211ULL;

/* 1 when the text at i starts a markup hint: '<', '&', "://" or "www." (any case). */
static int markup_at(const uint8_t *text, int64_t i, int64_t length) {
    uint8_t c = text[i];
    if (c == '<' || c == '&') return 1;
    if (c == ':') return i + 2 < length && text[i + 1] == '/' && text[i + 2] == '/';
    return (c | 0x20) == 'w' && i + 3 < length && (text[i + 1] | 0x20) == 'w' && (text[i + 2] | 0x20) == 'w' &&
           text[i + 3] == '.';
}

static int64_t lookup(const uint8_t *token, int64_t length, uint64_t hash, const int64_t *slots, uint64_t mask,
                      const uint8_t *cand_data, const int64_t *cand_offsets, const int64_t *cand_ids) {
    if (length > MAX_TOKEN) return 0;
    for (uint64_t slot = hash & mask;; slot = (slot + 1) & mask) {
        int64_t k = slots[slot];
        if (k < 0) return 0;
        int64_t start = cand_offsets[k];
        if (cand_offsets[k + 1] - start != length) continue;
        int64_t j = 0;
        while (j < length && cand_data[start + j] == token[j]) j++;
        if (j == length) return cand_ids[k];
    }
}

/* Returns the number of tokens written to out_ids/out_rows (room for one per two bytes plus
 * one per row suffices). flags[r] marks the rows not tokenised here: FLAG_NON_ASCII, and (when
 * check_markup) FLAG_MARKUP; a flagged row's tokens are taken back. */
int64_t janus_ascii_token_ids(const uint8_t *data, const int64_t *offsets, int64_t n_rows, const int64_t *slots,
                              int64_t n_slots, const uint8_t *cand_data, const int64_t *cand_offsets,
                              const int64_t *cand_ids, int64_t *out_ids, int64_t *out_rows, uint8_t *flags,
                              int64_t check_markup) {
    uint8_t token[MAX_TOKEN];
    uint64_t mask = (uint64_t)n_slots - 1;
    int64_t n = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *text = data + offsets[r];
        int64_t length = offsets[r + 1] - offsets[r];
        int64_t row_start = n, size = 0;
        uint64_t hash = FNV_OFFSET;
        flags[r] = 0;
        for (int64_t i = 0; i <= length; i++) {
            uint8_t c = i < length ? text[i] : ' ';
            if (c >= 0x80 || (check_markup && i < length && markup_at(text, i, length))) {
                flags[r] = c >= 0x80 ? FLAG_NON_ASCII : FLAG_MARKUP;
                if (c < 0x80) /* a later non-ASCII byte sends the row to the general path instead */
                    for (int64_t j = i + 1; j < length; j++)
                        if (text[j] >= 0x80) {
                            flags[r] = FLAG_NON_ASCII;
                            break;
                        }
                n = row_start;
                break;
            }
            if (c >= 'A' && c <= 'Z') c |= 0x20;
            if (c == '\'' || c == '`') continue; /* deleted: "dog's" -> "dogs" */
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
                if (size < MAX_TOKEN) token[size] = c;
                size++;
                hash = (hash ^ c) * FNV_PRIME;
                continue;
            }
            if (size) {
                out_ids[n] = lookup(token, size, hash, slots, mask, cand_data, cand_offsets, cand_ids);
                out_rows[n] = r;
                n++;
                size = 0;
                hash = FNV_OFFSET;
            }
        }
    }
    return n;
}
