/* The hot loop of janus match: captions to term-word ids, and term-word ids to n-gram hits.
 *
 * janus_build/match/native.py loads this through ctypes; janus_build/match/matcher.py keeps
 * the numpy + Arrow path it replaces, which gives the same results (tests/test_match_native.py),
 * and which runs wherever this library was not built.
 *
 * janus_match_rows() takes the rows (captions) of an Arrow string array. Each row is cut into
 * tokens as janus_build.text.normalize does: NFKC, lower case, apostrophes deleted, runs of
 * letters and digits kept, anything else a separator. ASCII rows are cut over their bytes.
 * Rows with other characters are first mapped code point by code point through the table that
 * janus_build/match/unicode_table.py generates at build time (NFKC + lower case of each code
 * point alone), which is exact unless a code point's result depends on its neighbours
 * (combining marks, ...): such a row, or one with invalid UTF-8, is flagged FLAG_NON_ASCII and
 * left to the general (Arrow) path. A row with a markup hint ('<', '&', "://", "www.", as the
 * Arrow path's _MARKUP_HINT on normalised text) is flagged FLAG_MARKUP (all ASCII: the caller
 * removes HTML and URLs with Arrow's regex and passes it here again) or FLAG_NON_ASCII.
 *
 * Each token's term-word id is looked up (a word-at-a-time hash, then exact bytes) in the open-addressing
 * table native.py builds from the term table's candidate tokens. Without an n-gram table the
 * output is one (id, row) per token; with one, each row's ids are resolved at once into its
 * n-gram hits as Matcher._resolve does (the longest term at each position, left to right, none
 * inside an earlier one), and the output is one (row, term) per hit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef JANUS_UNICODE_TABLE
#include "_unicode_table.h"
#else
#define JANUS_UNIDATA_VERSION ""
#endif

#define MAX_TOKEN 256    /* a longer token is no term word: it gets id 0 */
#define MAX_NGRAM 16     /* native.py refuses longer n-grams */
#define FLAG_NON_ASCII 1 /* flags[r]: the general path (NFKC, Unicode separators, markup) */
#define FLAG_MARKUP 2    /* ASCII with a markup hint: HTML and URLs removed, then tokenised here */
#define FLAG_NO_MEMORY 3 /* never set when malloc succeeds: the caller raises MemoryError */

enum { SEP = 0, WORD = 1, APOS = 2, HINT = 3 }; /* byte classes; HINT: may start a markup hint */
enum { U_SELF = 0, U_MAP = 1, U_UNSAFE = 2 };   /* unicode_table.py's kinds */

static const uint64_t HASH_SEED = 0x9E3779B97F4A7C15ULL, HASH_MULTIPLIER = 0xFF51AFD7ED558CCDULL;

typedef struct { /* candidate tokens -> term-word ids (native.TokenTable) */
    const int64_t *slots;   /* candidate index, or -1: empty */
    const uint64_t *hashes; /* the hash of the candidate in each slot */
    uint64_t mask;
    const uint8_t *data;
    const int64_t *offsets;
    const int64_t *ids;
    int64_t longest;    /* the longest candidate: a longer token is none */
    uint64_t *occupied; /* one bit per slot (a few KiB, in L1): most tokens are rejected here */
} Tokens;

typedef struct { /* n-gram keys -> term index (native.NgramTable); keys is NULL: no resolving */
    const int64_t *keys; /* key = ((id1 * base) + id2) * base + ..., or -1: empty */
    const int64_t *terms;
    uint64_t mask;
    int64_t base, max_ngram;
} Ngrams;

typedef struct { /* the working buffers of one call */
    int64_t *ids; /* the current row's token ids */
    int64_t n_ids, room_ids, n_terms; /* n_terms: the ids that are not 0 */
    uint8_t *text; /* the current row, normalised (non-ASCII rows only) */
    int64_t room_text;
    uint8_t token[MAX_TOKEN + 8]; /* + 8: token_hash reads whole words */
} Work;

static uint8_t CLASS[256], LOWER[256];

static void init_classes(void) {
    for (int c = 0; c < 256; c++) {
        LOWER[c] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c | 0x20) : (uint8_t)c;
        int l = LOWER[c];
        CLASS[c] = ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) ? WORD : SEP;
    }
    CLASS['\''] = CLASS['`'] = APOS;
    CLASS['<'] = CLASS['&'] = CLASS[':'] = CLASS['w'] = CLASS['W'] = HINT;
    for (int c = 0x80; c < 256; c++) CLASS[c] = HINT;
}

/* 1 when the text at i starts a markup hint: '<', '&', "://" or "www." (any case). */
static int markup_at(const uint8_t *text, int64_t i, int64_t length) {
    uint8_t c = text[i];
    if (c == '<' || c == '&') return 1;
    if (c == ':') return i + 2 < length && text[i + 1] == '/' && text[i + 2] == '/';
    return (c | 0x20) == 'w' && i + 3 < length && (text[i + 1] | 0x20) == 'w' && (text[i + 2] | 0x20) == 'w' &&
           text[i + 3] == '.';
}

/* The hash of a token (native.token_hash): its little-endian 8-byte words, the last padded with
 * zeros, mixed in one multiply each. */
static inline uint64_t token_hash(const uint8_t *token, int64_t length) {
    uint64_t hash = HASH_SEED ^ (uint64_t)length;
    for (int64_t i = 0; i < length; i += 8) {
        uint64_t word;
        memcpy(&word, token + i, 8); /* the buffer has 8 bytes to spare; those past the token are masked */
        if (length - i < 8) word &= (1ULL << (8 * (length - i))) - 1;
        hash = (hash ^ word) * HASH_MULTIPLIER;
        hash ^= hash >> 29;
    }
    return hash ^ hash >> 32;
}

static inline int64_t lookup_token(const Tokens *t, const uint8_t *token, int64_t length) {
    if (length > t->longest || length > MAX_TOKEN) return 0;
    uint64_t hash = token_hash(token, length);
    uint64_t slot = hash & t->mask;
    if (!(t->occupied[slot >> 6] >> (slot & 63) & 1)) return 0;
    for (;; slot = (slot + 1) & t->mask) {
        int64_t k = t->slots[slot];
        if (k < 0) return 0;
        if (t->hashes[slot] != hash) continue;
        int64_t start = t->offsets[k];
        if (t->offsets[k + 1] - start == length && memcmp(t->data + start, token, (size_t)length) == 0) return t->ids[k];
    }
}

static int64_t lookup_ngram(const Ngrams *g, int64_t key) {
    for (uint64_t slot = ((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 20 & g->mask;; slot = (slot + 1) & g->mask) {
        int64_t k = g->keys[slot];
        if (k == key) return g->terms[slot];
        if (k < 0) return -1;
    }
}

static int grow(void **buffer, int64_t *room, int64_t need, size_t item) {
    if (need <= *room) return 1;
    int64_t size = *room * 2 > need ? *room * 2 : need;
    void *bigger = realloc(*buffer, (size_t)size * item);
    if (!bigger) return 0;
    *buffer = bigger;
    *room = size;
    return 1;
}

/* The token being cut: locals of the row functions, so that the compiler keeps them in registers. */
#define ADD_BYTE(c)                                                                                                   \
    do {                                                                                                              \
        if (size < MAX_TOKEN) token[size] = (c);                                                                      \
        size++;                                                                                                       \
    } while (0)
#define END_TOKEN()                                                                                                   \
    do {                                                                                                              \
        if (size) { /* room: one id per two bytes of text, plus one, is reserved by the callers */                  \
            int64_t id_ = lookup_token(t, token, size);                                                               \
            ids[n_ids++] = id_;                                                                                       \
            n_terms += id_ != 0;                                                                                      \
            size = 0;                                                                                                 \
        }                                                                                                             \
    } while (0)

/* Tokens of an ASCII row into w->ids. Returns 0, FLAG_MARKUP, or FLAG_NON_ASCII at the first
 * byte >= 0x80 (the row is then redone by unicode_row). */
static int ascii_row(Work *w, const Tokens *t, const uint8_t *text, int64_t length, int check_markup) {
    uint8_t *token = w->token;
    int64_t *ids = w->ids, size = 0, n_ids = 0, n_terms = 0;
    for (int64_t i = 0; i < length; i++) {
        uint8_t c = text[i];
        uint8_t kind = CLASS[c];
        if (kind == WORD) {
            ADD_BYTE(LOWER[c]);
        } else if (kind == SEP) {
            END_TOKEN();
        } else if (kind == HINT) {
            if (c >= 0x80) return FLAG_NON_ASCII;
            if (check_markup && markup_at(text, i, length)) { /* Arrow removes it, if the row is all ASCII */
                for (int64_t j = i + 1; j < length; j++)
                    if (text[j] >= 0x80) return FLAG_NON_ASCII;
                return FLAG_MARKUP;
            }
            if ((c | 0x20) == 'w')
                ADD_BYTE(LOWER[c]);
            else
                END_TOKEN();
        } /* APOS: deleted, "dog's" -> "dogs" */
    }
    END_TOKEN();
    w->n_ids = n_ids;
    w->n_terms = n_terms;
    return 0;
}

#ifdef JANUS_UNICODE_TABLE
static inline uint32_t unicode_entry(uint32_t cp) {
    return UNI_BLOCKS[UNI_STAGE1[cp >> UNI_BLOCK_SHIFT]][cp & ((1u << UNI_BLOCK_SHIFT) - 1)];
}

/* The code point at text[i] (valid UTF-8 only: shortest form, no surrogates); its byte count
 * in *size, or 0 when the bytes are not valid UTF-8. */
static uint32_t decode(const uint8_t *text, int64_t i, int64_t length, int *size) {
    uint8_t c = text[i];
    int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    *size = 0;
    if (c >= 0xF5 || n == 0 || i + n > length) return 0;
    uint32_t cp = c & (0x7F >> n);
    for (int k = 1; k < n; k++) {
        if ((text[i + k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (text[i + k] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    *size = n;
    return cp;
}

/* NFKC + lower case of a row into w->text, code point by code point; the length, or -1 when
 * the row needs the general path (an unsafe code point, invalid UTF-8, or no memory). */
static int64_t normalise(Work *w, const uint8_t *text, int64_t length) {
    int64_t out = 0;
    for (int64_t i = 0; i < length;) {
        if (!grow((void **)&w->text, &w->room_text, out + 64, 1)) return -1; /* a mapping is <= 63 bytes */
        uint8_t c = text[i];
        if (c < 0x80) {
            w->text[out++] = LOWER[c];
            i++;
            continue;
        }
        int size;
        uint32_t cp = decode(text, i, length, &size);
        if (!size) return -1;
        uint32_t entry = unicode_entry(cp);
        if ((entry & 3) == U_UNSAFE) return -1;
        if ((entry & 3) == U_SELF) {
            memcpy(w->text + out, text + i, (size_t)size);
            out += size;
        } else {
            uint32_t n = entry >> 4 & 63;
            memcpy(w->text + out, UNI_POOL + (entry >> 10), n);
            out += n;
        }
        i += size;
    }
    return out;
}

/* Tokens of a row holding non-ASCII bytes: normalised, then cut by each code point's class. */
static int unicode_row(Work *w, const Tokens *t, const uint8_t *raw, int64_t raw_length, int check_markup) {
    int64_t length = normalise(w, raw, raw_length);
    if (length < 0) return FLAG_NON_ASCII;
    if (!grow((void **)&w->ids, &w->room_ids, length / 2 + 1, sizeof(int64_t))) return FLAG_NO_MEMORY;
    const uint8_t *text = w->text;
    uint8_t *token = w->token;
    int64_t *ids = w->ids, size = 0, n_ids = 0, n_terms = 0;
    for (int64_t i = 0; i < length;) {
        uint8_t c = text[i];
        if (c < 0x80) {
            if (CLASS[c] == HINT && check_markup && markup_at(text, i, length)) return FLAG_NON_ASCII;
            if (CLASS[c] == WORD || (c | 0x20) == 'w')
                ADD_BYTE(c);
            else if (CLASS[c] != APOS)
                END_TOKEN();
            i++;
            continue;
        }
        int bytes;
        uint32_t cp = decode(text, i, length, &bytes);
        switch (unicode_entry(cp) >> 2 & 3) {
        case WORD:
            for (int k = 0; k < bytes; k++) ADD_BYTE(text[i + k]);
            break;
        case APOS:
            break;
        default:
            END_TOKEN();
        }
        i += bytes;
    }
    END_TOKEN();
    w->n_ids = n_ids;
    w->n_terms = n_terms;
    return 0;
}
#else
static int unicode_row(Work *w, const Tokens *t, const uint8_t *raw, int64_t raw_length, int check_markup) {
    (void)w, (void)t, (void)raw, (void)raw_length, (void)check_markup;
    return FLAG_NON_ASCII;
}
#endif

/* The n-gram hits of one row's ids: (row, term) appended to out_rows/out_terms at *n. */
static void resolve_row(const Ngrams *g, const int64_t *ids, int64_t n_ids, int64_t row, int64_t *out_rows,
                        int64_t *out_terms, int64_t *n) {
    int64_t keys[MAX_NGRAM];
    for (int64_t i = 0; i < n_ids;) {
        if (!ids[i]) {
            i++;
            continue;
        }
        int64_t run = 1;
        keys[0] = ids[0 + i];
        while (run < g->max_ngram && i + run < n_ids && ids[i + run]) {
            keys[run] = keys[run - 1] * g->base + ids[i + run];
            run++;
        }
        int64_t advance = 1;
        for (int64_t len = run; len >= 1; len--) {
            int64_t term = lookup_ngram(g, keys[len - 1]);
            if (term >= 0) {
                out_rows[*n] = row;
                out_terms[*n] = term;
                (*n)++;
                advance = len;
                break;
            }
        }
        i += advance;
    }
}

const char *janus_unidata_version(void) { return JANUS_UNIDATA_VERSION; }

/* See the top of the file. out_a/out_b: (ids, rows) per token without n-grams (ngram_keys is
 * NULL), else (rows, terms) per hit, `room` entries long. Returns the number of entries written,
 * or -1 when they did not fit (NFKC can make a row longer: native.py calls again with more
 * room), or -2 when memory ran out. use_unicode = 0 flags every non-ASCII row instead. */
int64_t janus_match_rows(const uint8_t *data, const int64_t *offsets, int64_t n_rows, const int64_t *token_slots,
                         const uint64_t *token_hashes, int64_t n_token_slots, const uint8_t *cand_data,
                         const int64_t *cand_offsets, const int64_t *cand_ids, const int64_t *ngram_keys,
                         const int64_t *ngram_terms, int64_t n_ngram_slots, int64_t base, int64_t max_ngram,
                         int64_t *out_a, int64_t *out_b, int64_t room, uint8_t *flags, int64_t check_markup,
                         int64_t use_unicode) {
    static int ready = 0;
    if (!ready) {
        init_classes();
        ready = 1;
    }
    Tokens t = {token_slots, token_hashes, (uint64_t)n_token_slots - 1, cand_data, cand_offsets, cand_ids, 0, NULL};
    Ngrams g = {ngram_keys, ngram_terms, (uint64_t)n_ngram_slots - 1, base, max_ngram};
    Work w = {0};
    int64_t n = 0, status = 0;
    t.occupied = calloc((size_t)(n_token_slots + 63) / 64, sizeof(uint64_t));
    if (!t.occupied) return -2;
    for (int64_t slot = 0; slot < n_token_slots; slot++) {
        int64_t k = token_slots[slot];
        if (k < 0) continue;
        t.occupied[slot >> 6] |= 1ULL << (slot & 63);
        if (cand_offsets[k + 1] - cand_offsets[k] > t.longest) t.longest = cand_offsets[k + 1] - cand_offsets[k];
    }
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *text = data + offsets[r];
        int64_t length = offsets[r + 1] - offsets[r];
        if (!grow((void **)&w.ids, &w.room_ids, length / 2 + 1, sizeof(int64_t))) {
            status = -2;
            break;
        }
        int flag = ascii_row(&w, &t, text, length, (int)check_markup);
        if (flag == FLAG_NON_ASCII && use_unicode) {
            flag = unicode_row(&w, &t, text, length, (int)check_markup);
        }
        if (flag == FLAG_NO_MEMORY) {
            status = -2;
            break;
        }
        flags[r] = (uint8_t)flag;
        if (flag) continue;
        if (n + w.n_ids > room) {
            status = -1;
            break;
        }
        if (!ngram_keys) {
            for (int64_t k = 0; k < w.n_ids; k++) {
                out_a[n] = w.ids[k];
                out_b[n++] = r;
            }
        } else if (w.n_terms) {
            resolve_row(&g, w.ids, w.n_ids, r, out_a, out_b, &n);
        }
    }
    free(t.occupied);
    free(w.ids);
    free(w.text);
    return status ? status : n;
}

/* The n-gram hits of tokens given as ids (0: no term word) and rows, each row's tokens together
 * and in caption order: (row, term) per hit into out_rows/out_terms (room: n_tokens). */
int64_t janus_resolve(const int64_t *ids, const int64_t *rows, int64_t n_tokens, const int64_t *ngram_keys,
                      const int64_t *ngram_terms, int64_t n_ngram_slots, int64_t base, int64_t max_ngram,
                      int64_t *out_rows, int64_t *out_terms) {
    Ngrams g = {ngram_keys, ngram_terms, (uint64_t)n_ngram_slots - 1, base, max_ngram};
    int64_t n = 0;
    for (int64_t start = 0, end; start < n_tokens; start = end) {
        for (end = start + 1; end < n_tokens && rows[end] == rows[start];) end++;
        resolve_row(&g, ids + start, end - start, rows[start], out_rows, out_terms, &n);
    }
    return n;
}
