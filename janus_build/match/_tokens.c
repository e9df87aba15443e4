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
 * left to the general (Arrow) path. HTML tags, entities and URLs are blanked out of a row's
 * lower-cased text first (remove_markup: janus_build.text's patterns, matched as RE2 does) when
 * it holds a markup hint ('<', '&', "://", "www.", the Arrow path's _MARKUP_HINT).
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

#define FILTER_BITS 16 /* the filter has 2^16 bits: a few % of them set by a few thousand candidates */
#define MAX_TOKEN 256    /* a longer token is no term word: it gets id 0 */
#define MAX_NGRAM 16     /* native.py refuses longer n-grams */
#define FLAG_NON_ASCII 1 /* flags[r]: the general path (NFKC, Unicode separators, markup) */
#define FLAG_NO_MEMORY 3 /* never set when malloc succeeds: the caller raises MemoryError */

enum { SEP = 0, WORD = 1, APOS = 2, HINT = 3 }; /* byte classes; HINT: non-ASCII, or a separator in a markup hint */
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
    uint64_t *filter; /* FILTER_BITS bits, one set per candidate's hash (8 KiB, in L1): most tokens stop here */
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
    uint64_t *masks; /* the current row's byte classes (ascii_row) */
    int64_t room_masks;
    uint8_t *text; /* the current row, normalised (non-ASCII rows only) */
    int64_t room_text;
    uint8_t token[MAX_TOKEN + 8]; /* + 8: token_hash reads whole words */
} Work;

/* A byte's class, and its lower case (computed, not tables: nothing to set up, and calls from
 * several threads at once, which ctypes allows, share no state). */
static inline int byte_class(uint8_t c) {
    if (c >= 0x80 || c == '<' || c == '&' || c == ':' || c == '.') return HINT;
    if ((uint8_t)((c | 0x20) - 'a') < 26 || (uint8_t)(c - '0') < 10) return WORD;
    return c == '\'' || c == '`' ? APOS : SEP;
}

static inline uint8_t lower_byte(uint8_t c) { return (uint8_t)(c - 'A') < 26 ? (uint8_t)(c | 0x20) : c; }

/* 1 when the text at i is in a markup hint: '<', '&', "://" (at its ':'), "www." (at its '.'; any case). */
static int markup_at(const uint8_t *text, int64_t i, int64_t length) {
    uint8_t c = text[i];
    if (c == '<' || c == '&') return 1;
    if (c == ':') return i + 2 < length && text[i + 1] == '/' && text[i + 2] == '/';
    return c == '.' && i >= 3 && (text[i - 3] | 0x20) == 'w' && (text[i - 2] | 0x20) == 'w' && (text[i - 1] | 0x20) == 'w';
}

/* janus_build.text's markup patterns, on lower-cased text, as Arrow's RE2 applies them
 * (leftmost-first, TAG | ENTITY | URL): the end of the match starting at i, or -1.
 *   TAG     </?[a-z][a-z0-9:-]*(?:[\s/][^<>]*)?>  |  <![^<>]*>      (RE2's \s: \t \n \f \r space)
 *   ENTITY  &(?:[a-z]{2,8}|#[0-9]{1,7}|#x[0-9a-f]{1,6});
 *   URL     (?:https?://|ftp://|www\.)[a-z0-9\-._~:/?#@!$&*+;=%]*                                   */
static inline int is_lower(uint8_t c) { return c >= 'a' && c <= 'z'; }
static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static inline int is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

static int64_t run_of(const uint8_t *s, int64_t i, int64_t n, int (*member)(uint8_t)) {
    while (i < n && member(s[i])) i++;
    return i;
}

static int64_t tag_end(const uint8_t *s, int64_t i, int64_t n) { /* s[i] == '<' */
    int64_t j = i + 1;
    if (j < n && s[j] == '!') {
        for (j++; j < n && s[j] != '<' && s[j] != '>';) j++;
        return j < n && s[j] == '>' ? j + 1 : -1;
    }
    if (j < n && s[j] == '/') j++;
    if (j >= n || !is_lower(s[j])) return -1;
    for (j++; j < n && (is_lower(s[j]) || is_digit(s[j]) || s[j] == ':' || s[j] == '-');) j++;
    if (j < n && s[j] == '>') return j + 1;
    if (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\f' || s[j] == '\r' || s[j] == '/')) {
        for (j++; j < n && s[j] != '<' && s[j] != '>';) j++;
        if (j < n && s[j] == '>') return j + 1;
    }
    return -1;
}

static int64_t entity_end(const uint8_t *s, int64_t i, int64_t n) { /* s[i] == '&' */
    int64_t j = i + 1, end;
    if (j < n && is_lower(s[j])) {
        end = run_of(s, j, n, is_lower);
        return end - j >= 2 && end - j <= 8 && end < n && s[end] == ';' ? end + 1 : -1;
    }
    if (j + 1 >= n || s[j] != '#') return -1;
    if (is_digit(s[j + 1])) {
        end = run_of(s, j + 1, n, is_digit);
        return end - j - 1 <= 7 && end < n && s[end] == ';' ? end + 1 : -1;
    }
    if (s[j + 1] != 'x' || j + 2 >= n || !is_hex(s[j + 2])) return -1;
    end = run_of(s, j + 2, n, is_hex);
    return end - j - 2 <= 6 && end < n && s[end] == ';' ? end + 1 : -1;
}

static inline int url_byte(uint8_t c) {
    return is_lower(c) || is_digit(c) || (c && strchr("-._~:/?#@!$&*+;=%", c) != NULL);
}

static int starts(const uint8_t *s, int64_t i, int64_t n, const char *prefix) {
    int64_t k = (int64_t)strlen(prefix);
    return i + k <= n && memcmp(s + i, prefix, (size_t)k) == 0;
}

static int64_t url_end(const uint8_t *s, int64_t i, int64_t n) {
    int64_t j;
    if (starts(s, i, n, "https://"))
        j = i + 8;
    else if (starts(s, i, n, "http://"))
        j = i + 7;
    else if (starts(s, i, n, "ftp://"))
        j = i + 6;
    else if (starts(s, i, n, "www."))
        j = i + 4;
    else
        return -1;
    while (j < n && url_byte(s[j])) j++;
    return j;
}

/* Every markup match of lower-cased s[0:n) blanked out with spaces (RE2 puts one space in its
 * place: the same tokens). */
static void remove_markup(uint8_t *s, int64_t n) {
    for (int64_t i = 0; i < n;) {
        int64_t end = -1;
        uint8_t c = s[i];
        if (c == '<')
            end = tag_end(s, i, n);
        else if (c == '&')
            end = entity_end(s, i, n);
        else if (c == 'h' || c == 'f' || c == 'w')
            end = url_end(s, i, n);
        if (end < 0) {
            i++;
            continue;
        }
        memset(s + i, ' ', (size_t)(end - i));
        i = end;
    }
}

/* 8 bytes as a little-endian word (the order native.token_hash reads them in, on any CPU). */
static inline uint64_t load_le64(const uint8_t *bytes) {
    uint64_t word;
    memcpy(&word, bytes, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word = __builtin_bswap64(word);
#endif
    return word;
}

/* The hash of a token (native.token_hash): its little-endian 8-byte words, the last padded with
 * zeros, mixed in one multiply each. `fold` is ORed into every byte (0x20 lower-cases an ASCII
 * token of letters and digits where it lies); `end` bounds what may be read past the token. */
static inline uint64_t token_hash(const uint8_t *token, int64_t length, uint64_t fold, const uint8_t *end) {
    uint64_t hash = HASH_SEED ^ (uint64_t)length;
    if (length <= 8 && token + 8 <= end) { /* most tokens: one word */
        uint64_t word = load_le64(token);
        hash = (hash ^ ((word | fold) & (~0ULL >> (64 - 8 * length)))) * HASH_MULTIPLIER;
        hash ^= hash >> 29;
        return hash ^ hash >> 32;
    }
    for (int64_t i = 0; i < length; i += 8) {
        uint64_t word = 0;
        if (token + i + 8 <= end) {
            word = load_le64(token + i);
        } else {
            uint8_t last[8] = {0};
            memcpy(last, token + i, (size_t)(length - i < 8 ? length - i : 8));
            word = load_le64(last);
        }
        word |= fold;
        if (length - i < 8) word &= (1ULL << (8 * (length - i))) - 1;
        hash = (hash ^ word) * HASH_MULTIPLIER;
        hash ^= hash >> 29;
    }
    return hash ^ hash >> 32;
}

/* 0 when no candidate has this hash (its filter bit: bits that do not choose the slot). */
static inline uint64_t filter_bit(uint64_t hash) { return hash >> (64 - FILTER_BITS); }

static inline int may_be_candidate(const Tokens *t, uint64_t hash) {
    uint64_t bit = filter_bit(hash);
    return t->filter[bit >> 6] >> (bit & 63) & 1;
}

static int64_t probe(const Tokens *t, const uint8_t *token, int64_t length, uint64_t hash) {
    for (uint64_t slot = hash & t->mask;; slot = (slot + 1) & t->mask) {
        int64_t k = t->slots[slot];
        if (k < 0) return 0;
        if (t->hashes[slot] != hash) continue;
        int64_t start = t->offsets[k], j = 0;
        if (t->offsets[k + 1] - start != length) continue;
        while (j < length && t->data[start + j] == token[j]) j++;
        if (j == length) return t->ids[k];
    }
}

/* The term-word id of a token held as its (lower-cased) bytes in a MAX_TOKEN + 8 buffer. */
static inline int64_t lookup_token(const Tokens *t, const uint8_t *token, int64_t length) {
    if (length > t->longest || length > MAX_TOKEN) return 0;
    uint64_t hash = token_hash(token, length, 0, token + MAX_TOKEN + 8);
    return may_be_candidate(t, hash) ? probe(t, token, length, hash) : 0;
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

/* The token being cut by unicode_row: locals there, so that the compiler keeps them in registers. */
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

/* Per 64 bytes of a row, one bit per byte: WORD bytes, APOS bytes, HINT bytes. */
#if defined(__SSE2__) && !defined(JANUS_NO_SIMD) /* JANUS_NO_SIMD: the portable loop, for tests */
#include <emmintrin.h>

static inline __m128i in_range(__m128i v, char low, char count) { /* low <= v < low + count, unsigned */
    __m128i shifted = _mm_xor_si128(_mm_sub_epi8(v, _mm_set1_epi8(low)), _mm_set1_epi8((char)0x80));
    return _mm_cmplt_epi8(shifted, _mm_set1_epi8((char)(count - 128)));
}

static inline void classify16(const uint8_t *bytes, uint32_t *word, uint32_t *apos, uint32_t *hint) {
    __m128i v = _mm_loadu_si128((const __m128i *)bytes);
    __m128i letter = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 26);
    __m128i w = _mm_or_si128(letter, in_range(v, '0', 10));
    __m128i a = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\'')), _mm_cmpeq_epi8(v, _mm_set1_epi8('`')));
    __m128i h = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('<')), _mm_cmpeq_epi8(v, _mm_set1_epi8('&')));
    h = _mm_or_si128(h, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(':')), _mm_cmpeq_epi8(v, _mm_set1_epi8('.'))));
    *word = (uint32_t)_mm_movemask_epi8(w);
    *apos = (uint32_t)_mm_movemask_epi8(a);
    *hint = (uint32_t)(_mm_movemask_epi8(h) | _mm_movemask_epi8(v)); /* v's top bits: bytes >= 0x80 */
}
#else /* the same 8 bytes at a time in a 64-bit word ("SWAR"), for any 64-bit CPU */
#define HIGH_BITS 0x8080808080808080ULL
static inline uint64_t each_byte(uint8_t c) { return 0x0101010101010101ULL * c; }
/* For 7-bit bytes x: the top bit of each byte equal to c, or within [low, high]; exact (no carries). */
static inline uint64_t equal7(uint64_t x, uint8_t c) { return ~((x ^ each_byte(c)) + each_byte(0x7F)) & HIGH_BITS; }
static inline uint64_t range7(uint64_t x, uint8_t low, uint8_t high) {
    return (x + each_byte((uint8_t)(128 - low))) & ~(x + each_byte((uint8_t)(127 - high))) & HIGH_BITS;
}
static inline uint32_t top_bits(uint64_t m) { return (uint32_t)((((m & HIGH_BITS) >> 7) * 0x0102040810204080ULL) >> 56); }

static inline void classify8(const uint8_t *bytes, uint32_t *word, uint32_t *apos, uint32_t *hint) {
    uint64_t v = load_le64(bytes), high = v & HIGH_BITS, x = v & ~HIGH_BITS;
    uint64_t w = range7(x | each_byte(0x20), 'a', 'z') | range7(x, '0', '9');
    uint64_t a = equal7(x, '\'') | equal7(x, '`');
    uint64_t h = equal7(x, '<') | equal7(x, '&') | equal7(x, ':') | equal7(x, '.');
    *word = top_bits(w & ~high), *apos = top_bits(a & ~high), *hint = top_bits((h & ~high) | high);
}

static inline void classify16(const uint8_t *bytes, uint32_t *word, uint32_t *apos, uint32_t *hint) {
    uint32_t w0, a0, h0, w1, a1, h1;
    classify8(bytes, &w0, &a0, &h0);
    classify8(bytes + 8, &w1, &a1, &h1);
    *word = w0 | w1 << 8, *apos = a0 | a1 << 8, *hint = h0 | h1 << 8;
}
#endif

/* The masks of text[0:length) into w->masks: word, apostrophe and hint bits, 64 bytes a word. */
static int classify(Work *w, const uint8_t *text, int64_t length, const uint8_t *limit) {
    int64_t n_words = (length + 63) / 64;
    if (!grow((void **)&w->masks, &w->room_masks, 3 * n_words, sizeof(uint64_t))) return 0;
    uint64_t *word = w->masks, *apos = word + n_words, *hint = apos + n_words;
    uint8_t tail[16];
    for (int64_t k = 0; k < n_words; k++) {
        uint64_t wm = 0, am = 0, hm = 0;
        for (int part = 0; part < 4; part++) {
            int64_t at = k * 64 + part * 16;
            if (at >= length) break;
            const uint8_t *bytes = text + at;
            if (text + at + 16 > limit) { /* the data's last bytes: never read past them */
                memset(tail, ' ', 16);
                memcpy(tail, bytes, (size_t)(limit - bytes));
                bytes = tail;
            }
            uint32_t wp, ap, hp;
            classify16(bytes, &wp, &ap, &hp);
            wm |= (uint64_t)wp << (part * 16), am |= (uint64_t)ap << (part * 16), hm |= (uint64_t)hp << (part * 16);
        }
        if (length - k * 64 < 64) { /* bits past the row */
            uint64_t keep = (1ULL << (length - k * 64)) - 1;
            wm &= keep, am &= keep, hm &= keep;
        }
        word[k] = wm, apos[k] = am, hint[k] = hm;
    }
    return 1;
}

/* The first set bit at or after `from` in bits[0:n_words], or n_words * 64 (`invert`: the first clear bit). */
static inline int64_t next_bit(const uint64_t *bits, int64_t n_words, int64_t from, uint64_t invert) {
    int64_t k = from >> 6;
    if (k >= n_words) return n_words * 64;
    uint64_t word = (bits[k] ^ invert) & (~0ULL << (from & 63));
    while (!word) {
        if (++k >= n_words) return n_words * 64;
        word = bits[k] ^ invert;
    }
    return k * 64 + __builtin_ctzll(word);
}

static inline int any_bit(const uint64_t *bits, int64_t n_words, int64_t start, int64_t end) { /* in [start, end) */
    return next_bit(bits, n_words, start, 0) < end;
}

/* The term-word id of the ASCII token text[start:end) of letters and digits, hashed where it
 * lies (lower-cased by the hash's fold) and copied only when the filter lets it through. */
static inline int64_t ascii_token(const Tokens *t, uint8_t *token, const uint8_t *text, int64_t start, int64_t end,
                                  const uint8_t *limit) {
    int64_t length = end - start;
    if (length > t->longest || length > MAX_TOKEN) return 0;
    uint64_t hash = token_hash(text + start, length, 0x2020202020202020ULL, limit);
    if (!may_be_candidate(t, hash)) return 0;
    for (int64_t k = 0; k < length; k++) token[k] = lower_byte(text[start + k]);
    return probe(t, token, length, hash);
}

/* Tokens of an ASCII row into w->ids: runs of letters, digits and apostrophes (deleted) holding
 * a letter or digit; a row with a markup hint is lower-cased into w->text and its markup blanked
 * out first. Returns 0, FLAG_NON_ASCII (a byte >= 0x80: the row is then redone by unicode_row)
 * or FLAG_NO_MEMORY. `limit`: the end of the data, not to be read past. */
static int ascii_row(Work *w, const Tokens *t, const uint8_t *text, int64_t length, int check_markup,
                     const uint8_t *limit) {
    if (!classify(w, text, length, limit)) return FLAG_NO_MEMORY;
    int64_t n_words = (length + 63) / 64;
    uint64_t *word = w->masks, *apos = word + n_words, *hint = apos + n_words;
    int markup = 0;
    for (int64_t i = next_bit(hint, n_words, 0, 0); i < length; i = next_bit(hint, n_words, i + 1, 0)) {
        if (text[i] >= 0x80) return FLAG_NON_ASCII;
        markup |= check_markup && markup_at(text, i, length);
    }
    if (markup) {
        if (!grow((void **)&w->text, &w->room_text, length + 1, 1)) return FLAG_NO_MEMORY;
        for (int64_t i = 0; i < length; i++) w->text[i] = lower_byte(text[i]);
        remove_markup(w->text, length);
        return ascii_row(w, t, w->text, length, 0, w->text + length);
    }
    for (int64_t k = 0; k < n_words; k++) word[k] |= apos[k]; /* runs of letters, digits and apostrophes */
    int64_t *ids = w->ids, n_ids = 0, n_terms = 0, id;
    for (int64_t start = next_bit(word, n_words, 0, 0); start < length; start = next_bit(word, n_words, start, 0)) {
        int64_t end = next_bit(word, n_words, start, ~0ULL);
        if (end > length) end = length;
        if (!any_bit(apos, n_words, start, end)) {
            id = ascii_token(t, w->token, text, start, end, limit);
        } else { /* apostrophes deleted: "dog's" -> "dogs"; none but apostrophes: no token */
            int64_t size = 0;
            for (int64_t k = start; k < end && size <= MAX_TOKEN; k++)
                if (byte_class(text[k]) == WORD) w->token[size++] = lower_byte(text[k]);
            if (!size) {
                start = end;
                continue;
            }
            id = lookup_token(t, w->token, size);
        }
        ids[n_ids++] = id;
        n_terms += id != 0;
        start = end;
    }
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
            w->text[out++] = lower_byte(c);
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
static int unicode_row(Work *w, const Tokens *t, const uint8_t *raw, int64_t raw_length) {
    int64_t length = normalise(w, raw, raw_length);
    if (length < 0) return FLAG_NON_ASCII;
    remove_markup(w->text, length);
    if (!grow((void **)&w->ids, &w->room_ids, length / 2 + 1, sizeof(int64_t))) return FLAG_NO_MEMORY;
    const uint8_t *text = w->text;
    uint8_t *token = w->token;
    int64_t *ids = w->ids, size = 0, n_ids = 0, n_terms = 0;
    for (int64_t i = 0; i < length;) {
        uint8_t c = text[i];
        if (c < 0x80) {
            if (byte_class(c) == WORD)
                ADD_BYTE(c);
            else if (byte_class(c) != APOS)
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
static int unicode_row(Work *w, const Tokens *t, const uint8_t *raw, int64_t raw_length) {
    (void)w, (void)t, (void)raw, (void)raw_length;
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
        keys[0] = ids[i];
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
                         int64_t *out_a, int64_t *out_b, int64_t room, uint8_t *flags, int64_t use_unicode) {
    Tokens t = {token_slots, token_hashes, (uint64_t)n_token_slots - 1, cand_data, cand_offsets, cand_ids, 0, NULL};
    Ngrams g = {ngram_keys, ngram_terms, (uint64_t)n_ngram_slots - 1, base, max_ngram};
    Work w = {0};
    int64_t n = 0, status = 0;
    const uint8_t *limit = data + offsets[n_rows];
    t.filter = calloc((1 << FILTER_BITS) / 64, sizeof(uint64_t));
    if (!t.filter) return -2;
    for (int64_t slot = 0; slot < n_token_slots; slot++) {
        int64_t k = token_slots[slot];
        if (k < 0) continue;
        uint64_t bit = filter_bit(token_hashes[slot]);
        t.filter[bit >> 6] |= 1ULL << (bit & 63);
        if (cand_offsets[k + 1] - cand_offsets[k] > t.longest) t.longest = cand_offsets[k + 1] - cand_offsets[k];
    }
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *text = data + offsets[r];
        int64_t length = offsets[r + 1] - offsets[r];
        if (!grow((void **)&w.ids, &w.room_ids, length / 2 + 1, sizeof(int64_t))) {
            status = -2;
            break;
        }
        int flag = ascii_row(&w, &t, text, length, 1, limit);
        if (flag == FLAG_NON_ASCII && use_unicode) flag = unicode_row(&w, &t, text, length);
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
    free(t.filter);
    free(w.ids);
    free(w.masks);
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
