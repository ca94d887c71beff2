/* ftsd._native: the per-token loops of analysis.py and store/schema.py for the common case, in C.

   ascii_terms / ascii_marks: the words (or their short grams), long words (windowed), chunks and marks of
   searchable ASCII text, in one pass (analysis.py: Analyzer._terms, chunks_of, _short_grams, Analyzer._marks give
   the same sets).
   text_chunks / text_marks: the chunks and marks of any searchable text (analysis.chunks_of, Analyzer._marks).
   gram_table / short_grams: the 1..partial-1 character grams of any words, the known ones as pattern terms
   (analysis._short_grams gives the same set).
   term_records: a field's serialised Xapian term records (store/schema.py: _term_records gives the same bytes).
   ascii_normalise / ascii_searchable: analysis.normalise and analysis.searchable of ASCII text.

   Every function has a pure-Python twin that is the reference: tests/test_native.py holds them equal. The input is
   untrusted mail text: every index is checked against the text's length, and nothing here can overflow (lengths
   are Py_ssize_t of objects that exist; sums are checked). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ASCII character classes: W = \w ([A-Za-z0-9_]), L = a letter or "@" (the _ASCII_RUN look-arounds), D = a digit */
enum { W = 1, L = 2, D = 4 };
static unsigned char cls[256];

static void init_classes(void) {
    for (int c = 0; c < 128; c++) {
        unsigned char k = 0;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k = W | L;
        else if (c >= '0' && c <= '9') k = W | D;
        else if (c == '_') k = W;
        else if (c == '@') k = L;
        cls[c] = k;
    }
}

#define IS_WORD(c) (cls[(unsigned char)(c)] & W)

/* A new str holding s[0:len] (ASCII). */
static PyObject *ascii_str(const char *s, Py_ssize_t len) {
    PyObject *out = PyUnicode_New(len, 127);
    if (out != NULL) memcpy(PyUnicode_DATA(out), s, (size_t)len);
    return out;
}

/* Adds s[0:len] to `set` (a new set or frozenset); 0 or -1 with an exception. */
static int add_str(PyObject *set, const char *s, Py_ssize_t len) {
    PyObject *str = ascii_str(s, len);
    if (str == NULL) return -1;
    int rc = PySet_Add(set, str);
    Py_DECREF(str);
    return rc;
}

/* analysis._windows: s[0:len] itself up to `window` characters, else overlapping `window`-character slices every
   `step` characters, the last one reaching the end. */
static int add_windows(PyObject *set, const char *s, Py_ssize_t len, Py_ssize_t step, Py_ssize_t window) {
    if (len <= window) return add_str(set, s, len);
    for (Py_ssize_t i = 0;;) {
        Py_ssize_t rest = len - i;
        if (add_str(set, s + i, rest < window ? rest : window) < 0) return -1;
        if (window >= rest || step >= rest) return 0;
        i += step;
    }
}

/* The words already seen, as spans of the text (open addressing): a repeated word costs a hash and a memcmp, not
   a new str. */
typedef struct {
    Py_ssize_t start, len; /* len 0: a free slot */
    uint64_t hash;
} Span;

typedef struct {
    Span *slots;
    size_t mask, used;
} Spans;

static uint64_t fnv1a(const char *s, Py_ssize_t len) {
    uint64_t h = 14695981039346656037ULL;
    for (Py_ssize_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* 1 if s[start:start+len] is new (now added), 0 if seen, -1 out of memory. */
static int spans_add(Spans *t, const char *s, Py_ssize_t start, Py_ssize_t len) {
    if (t->slots == NULL || (t->used + 1) * 2 > t->mask + 1) {
        size_t size = t->slots == NULL ? 256 : (t->mask + 1) * 2;
        Span *slots = PyMem_Calloc(size, sizeof(Span));
        if (slots == NULL) return -1;
        for (size_t i = 0; t->slots != NULL && i <= t->mask; i++) {
            if (t->slots[i].len == 0) continue;
            size_t k = (size_t)t->slots[i].hash & (size - 1);
            while (slots[k].len != 0) k = (k + 1) & (size - 1);
            slots[k] = t->slots[i];
        }
        PyMem_Free(t->slots);
        t->slots = slots;
        t->mask = size - 1;
    }
    uint64_t h = fnv1a(s + start, len);
    size_t k = (size_t)h & t->mask;
    for (; t->slots[k].len != 0; k = (k + 1) & t->mask) {
        Span *o = &t->slots[k];
        if (o->hash == h && o->len == len && memcmp(s + o->start, s + start, (size_t)len) == 0) return 0;
    }
    t->slots[k] = (Span){start, len, h};
    t->used++;
    return 1;
}

/* ---- analysis._short_grams: the 1..partial-1 character grams of words, the known ones as pattern terms ---- */

/* An ASCII gram of 1 or 2 characters as an index: c, or 128 + a * 128 + b. */
#define ASCII_GRAMS (128 + 128 * 128)
#define TABLE_NAME "ftsd._native.gram_table"

/* A set of grams as spans of str objects, compared by code point (open addressing): the known grams that are not
   ASCII pairs (-> their index), or the unknown grams already added to a result. `str` is borrowed: the strings
   outlive the set (the table's tuple, or the words of one call). */
typedef struct {
    PyObject *str; /* NULL: a free slot */
    Py_ssize_t start, len;
    uint64_t hash;
    Py_ssize_t value;
} GramSlot;

typedef struct {
    GramSlot *slots;
    size_t mask, used;
} GramSet;

static uint64_t cp_hash(int kind, const void *data, Py_ssize_t start, Py_ssize_t len) {
    uint64_t h = 14695981039346656037ULL;
    for (Py_ssize_t i = start; i < start + len; i++) h = (h ^ PyUnicode_READ(kind, data, i)) * 1099511628211ULL;
    return h;
}

static GramSlot *gramset_find(const GramSet *t, int kind, const void *data, Py_ssize_t start, Py_ssize_t len,
                              uint64_t h) {
    if (t->slots == NULL) return NULL;
    for (size_t k = (size_t)h & t->mask; t->slots[k].str != NULL; k = (k + 1) & t->mask) {
        GramSlot *o = &t->slots[k];
        if (o->hash != h || o->len != len) continue;
        int okind = PyUnicode_KIND(o->str);
        const void *odata = PyUnicode_DATA(o->str);
        Py_ssize_t i = 0;
        while (i < len && PyUnicode_READ(okind, odata, o->start + i) == PyUnicode_READ(kind, data, start + i)) i++;
        if (i == len) return o;
    }
    return NULL;
}

/* Adds a gram that gramset_find did not find: 0, or -1 with MemoryError. */
static int gramset_put(GramSet *t, PyObject *str, Py_ssize_t start, Py_ssize_t len, uint64_t h, Py_ssize_t value) {
    if (t->slots == NULL || (t->used + 1) * 2 > t->mask + 1) {
        size_t size = t->slots == NULL ? 64 : (t->mask + 1) * 2;
        GramSlot *slots = PyMem_Calloc(size, sizeof(GramSlot));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; t->slots != NULL && i <= t->mask; i++) {
            if (t->slots[i].str == NULL) continue;
            size_t k = (size_t)t->slots[i].hash & (size - 1);
            while (slots[k].str != NULL) k = (k + 1) & (size - 1);
            slots[k] = t->slots[i];
        }
        PyMem_Free(t->slots);
        t->slots = slots;
        t->mask = size - 1;
    }
    size_t k = (size_t)h & t->mask;
    while (t->slots[k].str != NULL) k = (k + 1) & t->mask;
    t->slots[k] = (GramSlot){str, start, len, h, value};
    t->used++;
    return 0;
}

/* The known grams (analysis._gram_table): gram n is bit n % group of the pattern terms heads[n // group] + tail. */
typedef struct {
    Py_ssize_t partial, group, groups;
    PyObject *known, *heads, *tails; /* tuples of str (strong references) */
    Py_ssize_t ascii[ASCII_GRAMS];   /* the index of a known ASCII gram of 1-2 characters, -1 if unknown */
    GramSet other;                   /* the other known grams -> index */
} GramTable;

static void table_free(PyObject *capsule) {
    GramTable *t = PyCapsule_GetPointer(capsule, TABLE_NAME);
    if (t == NULL) return;
    PyMem_Free(t->other.slots);
    Py_XDECREF(t->known);
    Py_XDECREF(t->heads);
    Py_XDECREF(t->tails);
    PyMem_Free(t);
}

/* The ASCII index of str[start:start+len], or -1 (longer than 2, or a character beyond ASCII). */
static Py_ssize_t ascii_gram(int kind, const void *data, Py_ssize_t start, Py_ssize_t len) {
    Py_UCS4 a = PyUnicode_READ(kind, data, start);
    if (len == 1) return a < 128 ? (Py_ssize_t)a : -1;
    if (len != 2) return -1;
    Py_UCS4 b = PyUnicode_READ(kind, data, start + 1);
    return a < 128 && b < 128 ? 128 + (Py_ssize_t)a * 128 + (Py_ssize_t)b : -1;
}

PyDoc_STRVAR(gram_table_doc,
"gram_table(known, group, heads, tails, partial)\n--\n\n"
"The table short_grams and ascii_terms take: the known grams (a tuple of str of 1..partial-1 characters; a\n"
"duplicate's last place counts), `group` grams per pattern term, the head of each group's terms and the tail of\n"
"each of the 2**group patterns (tuples of str).");

static PyObject *gram_table(PyObject *self, PyObject *args) {
    PyObject *known, *heads, *tails;
    Py_ssize_t group, partial;
    if (!PyArg_ParseTuple(args, "O!nO!O!n:gram_table", &PyTuple_Type, &known, &group, &PyTuple_Type, &heads,
                          &PyTuple_Type, &tails, &partial))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(known);
    if (partial < 2 || group < 1 || group > 16 || PyTuple_GET_SIZE(tails) != ((Py_ssize_t)1 << group) ||
        PyTuple_GET_SIZE(heads) < (count + group - 1) / group) {
        PyErr_SetString(PyExc_ValueError, "gram_table: partial >= 2, 1 <= group <= 16, 2**group tails and a head "
                                          "per group of known grams");
        return NULL;
    }
    for (int which = 0; which < 3; which++) {
        PyObject *tuple = which == 0 ? known : which == 1 ? heads : tails;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
            PyObject *item = PyTuple_GET_ITEM(tuple, i);
            if (!PyUnicode_Check(item)) {
                PyErr_SetString(PyExc_TypeError, "gram_table: grams, heads and tails must be str");
                return NULL;
            }
#if PY_VERSION_HEX < 0x030C0000
            if (PyUnicode_READY(item) < 0) return NULL;
#endif
            Py_ssize_t len = PyUnicode_GET_LENGTH(item);
            if (which == 0 && (len < 1 || len >= partial)) {
                PyErr_SetString(PyExc_ValueError, "gram_table: a known gram has 1..partial-1 characters");
                return NULL;
            }
        }
    }
    GramTable *t = PyMem_Calloc(1, sizeof(GramTable));
    if (t == NULL) return PyErr_NoMemory();
    t->partial = partial;
    t->group = group;
    t->groups = PyTuple_GET_SIZE(heads);
    t->known = Py_NewRef(known);
    t->heads = Py_NewRef(heads);
    t->tails = Py_NewRef(tails);
    for (Py_ssize_t i = 0; i < ASCII_GRAMS; i++) t->ascii[i] = -1;
    PyObject *capsule = PyCapsule_New(t, TABLE_NAME, table_free);
    if (capsule == NULL) {
        Py_DECREF(t->known);
        Py_DECREF(t->heads);
        Py_DECREF(t->tails);
        PyMem_Free(t);
        return NULL;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *gram = PyTuple_GET_ITEM(known, n);
        int kind = PyUnicode_KIND(gram);
        const void *data = PyUnicode_DATA(gram);
        Py_ssize_t len = PyUnicode_GET_LENGTH(gram);
        Py_ssize_t index = ascii_gram(kind, data, 0, len);
        if (index >= 0) {
            t->ascii[index] = n;
            continue;
        }
        uint64_t h = cp_hash(kind, data, 0, len);
        GramSlot *o = gramset_find(&t->other, kind, data, 0, len, h);
        if (o != NULL) {
            o->value = n;
        } else if (gramset_put(&t->other, gram, 0, len, h, n) < 0) {
            Py_DECREF(capsule);
            return NULL;
        }
    }
    return capsule;
}

static const GramTable *table_of(PyObject *capsule) {
    if (!PyCapsule_IsValid(capsule, TABLE_NAME)) {
        PyErr_SetString(PyExc_TypeError, "the table must be one gram_table() made");
        return NULL;
    }
    return PyCapsule_GetPointer(capsule, TABLE_NAME);
}

/* One result being made: the pattern bits per group, the unknown grams already added. */
typedef struct {
    const GramTable *t;
    uint32_t *bits;                          /* per group */
    unsigned char seen[(ASCII_GRAMS + 7) / 8]; /* unknown ASCII grams of 1-2 characters already added */
    GramSet seen_other;                      /* other unknown grams already added */
    PyObject *out;                           /* frozenset: the unknown grams, then the pattern terms */
} Grams;

static int grams_init(Grams *g, const GramTable *t) {
    memset(g, 0, sizeof(*g));
    g->t = t;
    g->bits = PyMem_Calloc((size_t)(t->groups > 0 ? t->groups : 1), sizeof(uint32_t));
    if (g->bits == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    g->out = PyFrozenSet_New(NULL);
    return g->out == NULL ? -1 : 0;
}

static void grams_clear(Grams *g) {
    PyMem_Free(g->bits);
    g->bits = NULL;
    PyMem_Free(g->seen_other.slots);
    g->seen_other.slots = NULL;
    Py_CLEAR(g->out);
}

static int add_substring(PyObject *set, PyObject *str, Py_ssize_t start, Py_ssize_t len) {
    PyObject *gram = PyUnicode_Substring(str, start, start + len);
    if (gram == NULL) return -1;
    int rc = PySet_Add(set, gram);
    Py_DECREF(gram);
    return rc;
}

static inline void set_bit(Grams *g, Py_ssize_t n) {
    g->bits[n / g->t->group] |= (uint32_t)1 << (n % g->t->group);
}

/* The gram str[start:start+len] (no space in it): a bit if known, else added once as itself. */
static int gram_add(Grams *g, PyObject *str, int kind, const void *data, Py_ssize_t start, Py_ssize_t len) {
    const GramTable *t = g->t;
    Py_ssize_t index = ascii_gram(kind, data, start, len);
    if (index >= 0) {
        if (t->ascii[index] >= 0) {
            set_bit(g, t->ascii[index]);
            return 0;
        }
        if (g->seen[index / 8] & (1u << (index % 8))) return 0;
        g->seen[index / 8] |= (unsigned char)(1u << (index % 8));
        return add_substring(g->out, str, start, len);
    }
    uint64_t h = cp_hash(kind, data, start, len);
    GramSlot *o = gramset_find(&t->other, kind, data, start, len, h);
    if (o != NULL) {
        set_bit(g, o->value);
        return 0;
    }
    if (gramset_find(&g->seen_other, kind, data, start, len, h) != NULL) return 0;
    if (gramset_put(&g->seen_other, str, start, len, h, 0) < 0) return -1;
    return add_substring(g->out, str, start, len);
}

/* Every gram of 1..partial-1 characters of str[start:end] that holds no space. */
static int grams_of(Grams *g, PyObject *str, Py_ssize_t start, Py_ssize_t end) {
    int kind = PyUnicode_KIND(str);
    const void *data = PyUnicode_DATA(str);
    const GramTable *t = g->t;
    if (PyUnicode_IS_ASCII(str) && t->partial <= 3) { /* the common case: two table look-ups per character */
        const unsigned char *s = data;
        for (Py_ssize_t i = start; i < end; i++) {
            unsigned char a = s[i];
            if (a == ' ') continue;
            Py_ssize_t index = a;
            for (int size = 1; size <= 2; size++) {
                if (t->ascii[index] >= 0) {
                    set_bit(g, t->ascii[index]);
                } else if (!(g->seen[index / 8] & (1u << (index % 8)))) {
                    g->seen[index / 8] |= (unsigned char)(1u << (index % 8));
                    if (add_substring(g->out, str, i, size) < 0) return -1;
                }
                if (t->partial < 3 || i + 1 >= end || s[i + 1] == ' ') break;
                index = 128 + (Py_ssize_t)a * 128 + s[i + 1];
            }
        }
        return 0;
    }
    for (Py_ssize_t i = start; i < end; i++) {
        for (Py_ssize_t size = 1; size < t->partial && i + size <= end; size++) {
            if (PyUnicode_READ(kind, data, i + size - 1) == ' ') break;
            if (gram_add(g, str, kind, data, i, size) < 0) return -1;
        }
    }
    return 0;
}

/* The result: the unknown grams and one pattern term per group with a bit set (a new reference). */
static PyObject *grams_finish(Grams *g) {
    const GramTable *t = g->t;
    for (Py_ssize_t n = 0; n < t->groups; n++) {
        if (g->bits[n] == 0) continue;
        PyObject *term = PyUnicode_Concat(PyTuple_GET_ITEM(t->heads, n), PyTuple_GET_ITEM(t->tails, g->bits[n]));
        if (term == NULL) return NULL;
        int rc = PySet_Add(g->out, term);
        Py_DECREF(term);
        if (rc < 0) return NULL;
    }
    return Py_NewRef(g->out);
}

PyDoc_STRVAR(short_grams_doc,
"short_grams(table, words)\n--\n\n"
"The short-gram terms of the words (an iterable of str), as analysis._short_grams: every 1..partial-1 character\n"
"substring without a space, the known ones as one pattern term per group (a frozenset).");

static PyObject *short_grams(PyObject *self, PyObject *args) {
    PyObject *capsule, *words;
    if (!PyArg_ParseTuple(args, "OO:short_grams", &capsule, &words)) return NULL;
    const GramTable *t = table_of(capsule);
    if (t == NULL) return NULL;
    PyObject *seq = PySequence_Fast(words, "words must be an iterable of str");
    if (seq == NULL) return NULL;
    Grams g;
    PyObject *out = NULL;
    if (grams_init(&g, t) < 0) goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *word = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(word)) {
            PyErr_SetString(PyExc_TypeError, "words must be str");
            goto done;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(word) < 0) goto done;
#endif
        if (grams_of(&g, word, 0, PyUnicode_GET_LENGTH(word)) < 0) goto done;
    }
    out = grams_finish(&g);
done:
    grams_clear(&g);
    Py_DECREF(seq);
    return out;
}

/* ---- analysis.Analyzer._field / _marks: words, chunks and marks of ASCII text ---- */

typedef struct {
    Spans seen;           /* the words added so far */
    PyObject *words;      /* set: every word (the short grams are made from these), unless `grams` */
    Grams *grams;         /* the short grams of the words, made here (NULL: not) */
    PyObject *long_words; /* frozenset: words of >= partial characters, windowed */
    PyObject *chunks;     /* frozenset: cores of space-separated pieces with two words or more, windowed */
    PyObject *marks;      /* frozenset: maximal non-word runs with a non-space, the longest space run, windowed */
} Found;

static void found_clear(Found *f) {
    PyMem_Free(f->seen.slots);
    f->seen.slots = NULL;
    Py_CLEAR(f->words);
    Py_CLEAR(f->long_words);
    Py_CLEAR(f->chunks);
    Py_CLEAR(f->marks);
}

/* The chunk s[first:end] of a space-separated piece, from its first to its last word character, if the piece has
   two words or more (one word: all word characters, not a chunk). */
static int flush_chunk(Found *f, const char *s, Py_ssize_t first, Py_ssize_t end, Py_ssize_t words,
                       Py_ssize_t step, Py_ssize_t window) {
    if (f->chunks == NULL || words < 2) return 0;
    return add_windows(f->chunks, s + first, end - first, step, window);
}

/* One pass over s[0:n], the data of `text`: fills the sets of `f` that are not NULL. */
static int scan(Found *f, PyObject *text, const char *s, Py_ssize_t n, Py_ssize_t partial, Py_ssize_t step,
                Py_ssize_t window) {
    Py_ssize_t chunk_first = 0, chunk_end = 0, chunk_words = 0; /* the current space-separated piece */
    Py_ssize_t spaces = 0, longest_spaces = 0;
    Py_ssize_t i = 0;
    while (i < n) {
        Py_ssize_t j = i;
        if (IS_WORD(s[i])) {
            while (j < n && IS_WORD(s[j])) j++;
            if (f->long_words != NULL) {
                Py_ssize_t len = j - i;
                /* a lone "_" is a run of its own (ICU: not word-like) unless "@" joins it to a neighbour */
                int keep = !(len == 1 && s[i] == '_') || (i > 0 && s[i - 1] == '@') || (j < n && s[j] == '@');
                int fresh = keep ? spans_add(&f->seen, s, i, len) : 0;
                if (fresh < 0) {
                    PyErr_NoMemory();
                    return -1;
                }
                if (fresh && f->grams != NULL && grams_of(f->grams, text, i, j) < 0) return -1;
                if (fresh && (f->words != NULL || len >= partial)) {
                    PyObject *word = ascii_str(s + i, len);
                    if (word == NULL) return -1;
                    int rc = f->words != NULL ? PySet_Add(f->words, word) : 0;
                    if (rc == 0 && len >= partial) {
                        rc = len <= window ? PySet_Add(f->long_words, word)
                                           : add_windows(f->long_words, s + i, len, step, window);
                    }
                    Py_DECREF(word);
                    if (rc < 0) return -1;
                }
            }
            if (chunk_words == 0) chunk_first = i;
            chunk_words++;
            chunk_end = j;
            spaces = 0;
        } else {
            int other = 0; /* a non-space character in this non-word run */
            for (; j < n && !IS_WORD(s[j]); j++) {
                if (s[j] == ' ') {
                    if (flush_chunk(f, s, chunk_first, chunk_end, chunk_words, step, window) < 0)
                        return -1;
                    chunk_words = 0;
                    if (++spaces > longest_spaces) longest_spaces = spaces;
                } else {
                    other = 1;
                    spaces = 0;
                }
            }
            if (other && f->marks != NULL && add_windows(f->marks, s + i, j - i, step, window) < 0) return -1;
        }
        i = j;
    }
    if (flush_chunk(f, s, chunk_first, chunk_end, chunk_words, step, window) < 0) return -1;
    if (longest_spaces > 0 && f->marks != NULL) {
        /* runs of spaces only: the longest stands for all (a run of spaces is never longer than the text) */
        Py_ssize_t len = longest_spaces < window ? longest_spaces : window;
        PyObject *str = PyUnicode_New(len, 127);
        if (str == NULL) return -1;
        memset(PyUnicode_DATA(str), ' ', (size_t)len);
        int rc = PySet_Add(f->marks, str);
        Py_DECREF(str);
        if (rc < 0) return -1;
    }
    return 0;
}

/* The ASCII text of `text` (a str), or NULL with TypeError/ValueError. */
static const char *ascii_of(PyObject *text, Py_ssize_t *n) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) return NULL;
#endif
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_ValueError, "text must be ASCII");
        return NULL;
    }
    *n = PyUnicode_GET_LENGTH(text);
    return (const char *)PyUnicode_DATA(text);
}

static int check_sizes(Py_ssize_t step, Py_ssize_t window) {
    if (step < 1 || window < 1) {
        PyErr_SetString(PyExc_ValueError, "step and window must be >= 1");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(ascii_terms_doc,
"ascii_terms(text, partial, step, window, marks, table=None)\n--\n\n"
"(words, long words, chunks, marks) of searchable ASCII text: a set and three frozensets (marks empty unless\n"
"`marks`). With a gram_table for `partial`, the first is the words' short-gram terms instead (a frozenset,\n"
"short_grams of the words).");

static PyObject *ascii_terms(PyObject *self, PyObject *args) {
    PyObject *text, *capsule = Py_None;
    Py_ssize_t partial, step, window;
    int want_marks;
    if (!PyArg_ParseTuple(args, "Unnnp|O:ascii_terms", &text, &partial, &step, &window, &want_marks, &capsule))
        return NULL;
    Py_ssize_t n;
    const char *s = ascii_of(text, &n);
    if (s == NULL || check_sizes(step, window) < 0) return NULL;
    const GramTable *table = NULL;
    if (capsule != Py_None) {
        if ((table = table_of(capsule)) == NULL) return NULL;
        if (table->partial != partial) {
            PyErr_SetString(PyExc_ValueError, "ascii_terms: the gram table is for another partial");
            return NULL;
        }
    }
    Grams grams;
    if (table != NULL && grams_init(&grams, table) < 0) {
        grams_clear(&grams);
        return NULL;
    }
    Found f = {{NULL, 0, 0}, table == NULL ? PySet_New(NULL) : NULL, table == NULL ? NULL : &grams,
               PyFrozenSet_New(NULL), PyFrozenSet_New(NULL), want_marks ? PyFrozenSet_New(NULL) : NULL};
    PyObject *out = NULL, *first = NULL;
    if ((table == NULL && f.words == NULL) || f.long_words == NULL || f.chunks == NULL ||
        (want_marks && f.marks == NULL) || scan(&f, text, s, n, partial, step, window) < 0)
        goto done;
    if (!want_marks && (f.marks = PyFrozenSet_New(NULL)) == NULL) goto done;
    first = table == NULL ? Py_NewRef(f.words) : grams_finish(&grams);
    if (first != NULL) out = PyTuple_Pack(4, first, f.long_words, f.chunks, f.marks);
done:
    Py_XDECREF(first);
    found_clear(&f);
    if (table != NULL) grams_clear(&grams);
    return out;
}

PyDoc_STRVAR(ascii_marks_doc,
"ascii_marks(text, step, window)\n--\n\n"
"The marks of searchable ASCII text: a frozenset.");

static PyObject *ascii_marks(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t step, window;
    if (!PyArg_ParseTuple(args, "Unn:ascii_marks", &text, &step, &window)) return NULL;
    Py_ssize_t n;
    const char *s = ascii_of(text, &n);
    if (s == NULL || check_sizes(step, window) < 0) return NULL;
    Found f = {{NULL, 0, 0}, NULL, NULL, NULL, NULL, PyFrozenSet_New(NULL)};
    if (f.marks == NULL || scan(&f, text, s, n, 0, step, window) < 0) {
        found_clear(&f);
        return NULL;
    }
    return f.marks;
}

/* ---- the chunks and marks of any text (the words of non-ASCII text come from ICU: analysis.Analyzer._runs) ---- */

/* re's \w of a str pattern: str.isalnum() or "_" (sre: Py_UNICODE_ISALNUM). */
static inline int is_word_cp(Py_UCS4 c) {
    return c < 128 ? (cls[c] & W) != 0 : Py_UNICODE_ISALNUM(c);
}

/* analysis._windows of text[start:start+len], any str. */
static int add_windows_any(PyObject *set, PyObject *text, Py_ssize_t start, Py_ssize_t len, Py_ssize_t step,
                           Py_ssize_t window) {
    if (len <= window) return add_substring(set, text, start, len);
    for (Py_ssize_t i = 0;;) {
        Py_ssize_t rest = len - i;
        if (add_substring(set, text, start + i, rest < window ? rest : window) < 0) return -1;
        if (window >= rest || step >= rest) return 0;
        i += step;
    }
}

/* A mark text[start:start+len]: lone surrogates (no UTF-8 for them) as U+FFFD, then windowed (Analyzer._marks). */
static int add_mark_any(PyObject *set, PyObject *text, Py_ssize_t start, Py_ssize_t len, Py_ssize_t step,
                        Py_ssize_t window) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t i = 0;
    if (kind != PyUnicode_1BYTE_KIND)
        while (i < len && !Py_UNICODE_IS_SURROGATE(PyUnicode_READ(kind, data, start + i))) i++;
    else
        i = len;
    if (i == len) return add_windows_any(set, text, start, len, step, window);
    Py_UCS4 top = 0xFFFD;
    for (i = 0; i < len; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, start + i);
        if (!Py_UNICODE_IS_SURROGATE(c) && c > top) top = c;
    }
    PyObject *mark = PyUnicode_New(len, top);
    if (mark == NULL) return -1;
    int mkind = PyUnicode_KIND(mark);
    void *mdata = PyUnicode_DATA(mark);
    for (i = 0; i < len; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, start + i);
        PyUnicode_WRITE(mkind, mdata, i, Py_UNICODE_IS_SURROGATE(c) ? 0xFFFD : c);
    }
    int rc = add_windows_any(set, mark, 0, len, step, window);
    Py_DECREF(mark);
    return rc;
}

/* One pass over any searchable text: its chunks and marks (each set when not NULL), as scan() does for ASCII. */
static int scan_any(PyObject *text, PyObject *chunks, PyObject *marks, Py_ssize_t step, Py_ssize_t window) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_ssize_t chunk_first = 0, chunk_end = 0, chunk_words = 0, spaces = 0, longest_spaces = 0, i = 0;
    while (i < n) {
        Py_ssize_t j = i;
        if (is_word_cp(PyUnicode_READ(kind, data, i))) {
            while (j < n && is_word_cp(PyUnicode_READ(kind, data, j))) j++;
            if (chunk_words == 0) chunk_first = i;
            chunk_words++;
            chunk_end = j;
            spaces = 0;
        } else {
            int other = 0;
            for (; j < n; j++) {
                Py_UCS4 c = PyUnicode_READ(kind, data, j);
                if (is_word_cp(c)) break;
                if (c == ' ') {
                    if (chunks != NULL && chunk_words >= 2 &&
                        add_windows_any(chunks, text, chunk_first, chunk_end - chunk_first, step, window) < 0)
                        return -1;
                    chunk_words = 0;
                    if (++spaces > longest_spaces) longest_spaces = spaces;
                } else {
                    other = 1;
                    spaces = 0;
                }
            }
            if (other && marks != NULL && add_mark_any(marks, text, i, j - i, step, window) < 0) return -1;
        }
        i = j;
    }
    if (chunks != NULL && chunk_words >= 2 &&
        add_windows_any(chunks, text, chunk_first, chunk_end - chunk_first, step, window) < 0)
        return -1;
    if (longest_spaces > 0 && marks != NULL) {
        Py_ssize_t len = longest_spaces < window ? longest_spaces : window;
        PyObject *str = PyUnicode_New(len, 127);
        if (str == NULL) return -1;
        memset(PyUnicode_DATA(str), ' ', (size_t)len);
        int rc = PySet_Add(marks, str);
        Py_DECREF(str);
        if (rc < 0) return -1;
    }
    return 0;
}

PyDoc_STRVAR(text_chunks_doc,
"text_chunks(text, step, window, marks)\n--\n\n"
"(chunks, marks) of any searchable text: two frozensets (analysis.chunks_of and Analyzer._marks; marks empty\n"
"unless `marks`).");

static PyObject *text_chunks(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t step, window;
    int want_marks;
    if (!PyArg_ParseTuple(args, "Unnp:text_chunks", &text, &step, &window, &want_marks)) return NULL;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) return NULL;
#endif
    if (check_sizes(step, window) < 0) return NULL;
    PyObject *chunks = PyFrozenSet_New(NULL), *marks = PyFrozenSet_New(NULL), *out = NULL;
    if (chunks != NULL && marks != NULL && scan_any(text, chunks, want_marks ? marks : NULL, step, window) == 0)
        out = PyTuple_Pack(2, chunks, marks);
    Py_XDECREF(chunks);
    Py_XDECREF(marks);
    return out;
}

PyDoc_STRVAR(text_marks_doc,
"text_marks(text, step, window)\n--\n\n"
"The marks of any searchable text: a frozenset (Analyzer._marks).");

static PyObject *text_marks(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t step, window;
    if (!PyArg_ParseTuple(args, "Unn:text_marks", &text, &step, &window)) return NULL;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) return NULL;
#endif
    if (check_sizes(step, window) < 0) return NULL;
    PyObject *marks = PyFrozenSet_New(NULL);
    if (marks != NULL && scan_any(text, NULL, marks, step, window) < 0) Py_CLEAR(marks);
    return marks;
}

/* ---- analysis.normalise and analysis.searchable for ASCII text ---- */

/* str.isspace() of an ASCII character: what str.split() splits at */
static int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

PyDoc_STRVAR(ascii_normalise_doc,
"ascii_normalise(text)\n--\n\n"
"ASCII text lower-cased with each run of white space as one space (analysis._collapse(text.lower())).");

static PyObject *ascii_normalise(PyObject *self, PyObject *arg) {
    Py_ssize_t n;
    const char *s = ascii_of(arg, &n);
    if (s == NULL) return NULL;
    Py_ssize_t len = 0;
    for (Py_ssize_t i = 0; i < n; i++) /* the output length first: no over-allocation */
        if (!is_space((unsigned char)s[i]) || i == 0 || !is_space((unsigned char)s[i - 1])) len++;
    PyObject *out = PyUnicode_New(len, 127);
    if (out == NULL) return NULL;
    char *w = (char *)PyUnicode_DATA(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_space(c)) {
            if (i == 0 || !is_space((unsigned char)s[i - 1])) *w++ = ' ';
        } else {
            *w++ = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
    }
    return out;
}

PyDoc_STRVAR(ascii_searchable_doc,
"ascii_searchable(text, max_word_chars)\n--\n\n"
"ASCII text with each run of more than max_word_chars word characters replaced by one space (the same object\n"
"when there is none).");

static PyObject *ascii_searchable(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t max_chars;
    if (!PyArg_ParseTuple(args, "Un:ascii_searchable", &text, &max_chars)) return NULL;
    Py_ssize_t n;
    const char *s = ascii_of(text, &n);
    if (s == NULL) return NULL;
    if (max_chars < 0) {
        PyErr_SetString(PyExc_ValueError, "max_word_chars must be >= 0");
        return NULL;
    }
    Py_ssize_t len = 0, i = 0;
    int blanked = 0;
    while (i < n) { /* the output length first */
        Py_ssize_t j = i;
        while (j < n && IS_WORD(s[j])) j++;
        if (j > i) {
            if (j - i > max_chars) {
                len += 1;
                blanked = 1;
            } else {
                len += j - i;
            }
            i = j;
        } else {
            len++;
            i++;
        }
    }
    if (!blanked) return Py_NewRef(text);
    PyObject *out = PyUnicode_New(len, 127);
    if (out == NULL) return NULL;
    char *w = (char *)PyUnicode_DATA(out);
    for (i = 0; i < n;) {
        Py_ssize_t j = i;
        while (j < n && IS_WORD(s[j])) j++;
        if (j > i) {
            if (j - i > max_chars) {
                *w++ = ' ';
            } else {
                memcpy(w, s + i, (size_t)(j - i));
                w += j - i;
            }
            i = j;
        } else {
            *w++ = s[i++];
        }
    }
    return out;
}

/* ---- store/schema.py: a field's term records ---- */

typedef struct {
    PyObject *str; /* a strong reference: `bytes` points into it (its cached UTF-8) */
    const char *bytes;
    Py_ssize_t len;
} Term;

static int term_cmp(const void *a, const void *b) {
    const Term *x = a, *y = b;
    size_t n = (size_t)(x->len < y->len ? x->len : y->len);
    int c = memcmp(x->bytes, y->bytes, n);
    if (c != 0) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Xapian's encode_length (api/serialise.h): one byte below 255, else 0xff and n - 255 in 7-bit groups, low first,
   the last with its high bit set. Writes to `out` when not NULL; returns the length (at most 11 bytes). */
static size_t encode_length(size_t n, unsigned char *out) {
    if (n < 255) {
        if (out) out[0] = (unsigned char)n;
        return 1;
    }
    size_t k = 0;
    if (out) out[k] = 0xff;
    k++;
    n -= 255;
    while (n > 0x7f) {
        if (out) out[k] = (unsigned char)(n & 0x7f);
        k++;
        n >>= 7;
    }
    if (out) out[k] = (unsigned char)(n | 0x80);
    return k + 1;
}

PyDoc_STRVAR(term_records_doc,
"term_records(prefix, *term_sets)\n--\n\n"
"(number of distinct terms, their records) of a field: Xapian 1.4's serialised term list entries (length,\n"
"prefix + term, wdf 1, no positions) of the union of the sets of str, sorted by their UTF-8 bytes.");

static PyObject *term_records(PyObject *self, PyObject *args) {
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (nargs < 1 || !PyBytes_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError, "term_records(prefix: bytes, *term_sets)");
        return NULL;
    }
    PyObject *prefix = PyTuple_GET_ITEM(args, 0);
    size_t plen = (size_t)PyBytes_GET_SIZE(prefix);
    Py_ssize_t total = 0;
    for (Py_ssize_t a = 1; a < nargs; a++) {
        PyObject *set = PyTuple_GET_ITEM(args, a);
        if (!PyAnySet_Check(set)) {
            PyErr_SetString(PyExc_TypeError, "term sets must be sets or frozensets");
            return NULL;
        }
        Py_ssize_t size = PySet_GET_SIZE(set);
        if (size > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(Term) - total) return PyErr_NoMemory();
        total += size;
    }
    Term *terms = PyMem_New(Term, total > 0 ? total : 1);
    if (terms == NULL) return PyErr_NoMemory();
    Py_ssize_t count = 0;
    PyObject *out = NULL;
    for (Py_ssize_t a = 1; a < nargs; a++) {
        PyObject *it = PyObject_GetIter(PyTuple_GET_ITEM(args, a));
        if (it == NULL) goto done;
        PyObject *item;
        while ((item = PyIter_Next(it)) != NULL) {
            if (count >= total) { /* a set that grew meanwhile: never written past the array */
                Py_DECREF(item);
                Py_DECREF(it);
                PyErr_SetString(PyExc_RuntimeError, "a term set changed size");
                goto done;
            }
            if (!PyUnicode_Check(item)) {
                Py_DECREF(item);
                Py_DECREF(it);
                PyErr_SetString(PyExc_TypeError, "terms must be str");
                goto done;
            }
            terms[count].str = item; /* the reference PyIter_Next gave */
            terms[count].bytes = PyUnicode_AsUTF8AndSize(item, &terms[count].len);
            count++;
            if (terms[count - 1].bytes == NULL) { /* a lone surrogate: as str.encode, UnicodeEncodeError */
                Py_DECREF(it);
                goto done;
            }
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) goto done;
    }
    if (count > 1) qsort(terms, (size_t)count, sizeof(Term), term_cmp);
    size_t size = 0;
    Py_ssize_t distinct = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i > 0 && term_cmp(&terms[i - 1], &terms[i]) == 0) continue;
        size_t tlen = (size_t)terms[i].len;
        if (tlen > (size_t)PY_SSIZE_T_MAX - plen) {
            PyErr_NoMemory();
            goto done;
        }
        size_t record = encode_length(plen + tlen, NULL) + plen + tlen + 2;
        if (record > (size_t)PY_SSIZE_T_MAX - size) {
            PyErr_NoMemory();
            goto done;
        }
        size += record;
        distinct++;
    }
    PyObject *records = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (records == NULL) goto done;
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(records);
    const char *p = PyBytes_AS_STRING(prefix);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i > 0 && term_cmp(&terms[i - 1], &terms[i]) == 0) continue;
        size_t tlen = (size_t)terms[i].len;
        w += encode_length(plen + tlen, w);
        memcpy(w, p, plen);
        w += plen;
        memcpy(w, terms[i].bytes, tlen);
        w += tlen;
        *w++ = 1; /* wdf 1 */
        *w++ = 0; /* no positions */
    }
    out = Py_BuildValue("(nN)", distinct, records);
done:
    for (Py_ssize_t i = 0; i < count; i++) Py_DECREF(terms[i].str);
    PyMem_Free(terms);
    return out;
}

static PyMethodDef methods[] = {
    {"ascii_terms", ascii_terms, METH_VARARGS, ascii_terms_doc},
    {"ascii_marks", ascii_marks, METH_VARARGS, ascii_marks_doc},
    {"text_chunks", text_chunks, METH_VARARGS, text_chunks_doc},
    {"text_marks", text_marks, METH_VARARGS, text_marks_doc},
    {"gram_table", gram_table, METH_VARARGS, gram_table_doc},
    {"short_grams", short_grams, METH_VARARGS, short_grams_doc},
    {"term_records", term_records, METH_VARARGS, term_records_doc},
    {"ascii_normalise", ascii_normalise, METH_O, ascii_normalise_doc},
    {"ascii_searchable", ascii_searchable, METH_VARARGS, ascii_searchable_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ftsd._native",
    "Compiled twins of ftsd's per-token loops (analysis.py, store/schema.py); the Python code is the fallback.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    init_classes();
    return PyModule_Create(&module);
}
