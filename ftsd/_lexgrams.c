/* ftsd._lexgrams: the gram pairs of a lexicon segment (store/lexgrams.py: py_block_pairs gives the same bytes).

   block_pairs(blocks): for block number b (< 256) and every 4-byte window g of blocks[b] (read big-endian) with
   no newline in its first three bytes, the pair (g << 8) | b; returned as the sorted distinct pairs, native-endian uint64, as bytes. The blocks are
   lexicon text (untrusted mail words): only lengths of existing objects are used, and their sum is checked. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* LSD radix sort of the gram bits (8..39), 11 bits per pass: the pairs come block by block, in ascending block
   number, and each pass is stable, so pairs of one gram stay in block order and equal pairs end up adjacent. */
static Py_ssize_t sort_unique(uint64_t *a, uint64_t *tmp, Py_ssize_t n, uint64_t **sorted) {
    static const int shifts[3] = {8, 19, 30};
    for (int p = 0; p < 3; p++) {
        int shift = shifts[p];
        Py_ssize_t count[2049] = {0};
        for (Py_ssize_t i = 0; i < n; i++) count[((a[i] >> shift) & 0x7FF) + 1]++;
        for (int k = 0; k < 2048; k++) count[k + 1] += count[k];
        for (Py_ssize_t i = 0; i < n; i++) tmp[count[(a[i] >> shift) & 0x7FF]++] = a[i];
        uint64_t *swap = a;
        a = tmp;
        tmp = swap;
    }
    Py_ssize_t m = 0; /* `a` holds the sorted pairs now (the last pass wrote it) */
    for (Py_ssize_t i = 0; i < n; i++)
        if (m == 0 || a[m - 1] != a[i]) a[m++] = a[i];
    *sorted = a;
    return m;
}

static PyObject *block_pairs(PyObject *self, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "block_pairs: a sequence of bytes");
    if (seq == NULL) return NULL;
    Py_ssize_t nblocks = PySequence_Fast_GET_SIZE(seq);
    if (nblocks > 256) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "block_pairs: at most 256 blocks");
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t total = 0;
    for (Py_ssize_t b = 0; b < nblocks; b++) {
        if (!PyBytes_Check(items[b])) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "block_pairs: a sequence of bytes");
            return NULL;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(items[b]);
        if (len >= 4) {
            if (total > PY_SSIZE_T_MAX / 16 - len) {
                Py_DECREF(seq);
                return PyErr_NoMemory();
            }
            total += len - 3;
        }
    }
    uint64_t *a = PyMem_Malloc(total ? (size_t)total * 2 * sizeof(uint64_t) : 1);
    if (a == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t n = 0;
    for (Py_ssize_t b = 0; b < nblocks; b++) {
        const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(items[b]);
        Py_ssize_t len = PyBytes_GET_SIZE(items[b]);
        if (len < 4) continue;
        uint32_t g = ((uint32_t)s[0] << 16) | ((uint32_t)s[1] << 8) | s[2];
        for (Py_ssize_t i = 3; i < len; i++) {
            g = (g << 8) | s[i];
            if (s[i - 3] == '\n' || s[i - 2] == '\n' || s[i - 1] == '\n') continue; /* no needle starts there */
            a[n++] = ((uint64_t)g << 8) | (uint64_t)b;
        }
    }
    Py_DECREF(seq);
    uint64_t *sorted;
    Py_ssize_t m = sort_unique(a, a + total, n, &sorted);
    PyObject *out = PyBytes_FromStringAndSize((const char *)sorted, m * (Py_ssize_t)sizeof(uint64_t));
    PyMem_Free(a);
    return out;
}

static PyMethodDef methods[] = {
    {"block_pairs", block_pairs, METH_O,
     "block_pairs(blocks) -> bytes: sorted distinct (4-byte window << 8 | block number), native uint64"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ftsd._lexgrams",
    "The gram pairs of a lexicon segment in C (store/lexgrams.py holds the Python twin).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lexgrams(void) { return PyModule_Create(&module); }
