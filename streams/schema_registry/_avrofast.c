/* Avro's binary encoding, compiled once per schema: AvroSerde's fast path.
 *
 * fastavro interprets the parsed schema for every record, looking up each
 * field's type in dicts; that costs more than the bytes themselves.  Here a
 * schema is compiled once (avro_plan.py makes a plan of nested tuples, compile()
 * turns it into a tree of C nodes), and encode()/decode() walk that tree.
 *
 * Only what converts the same way as fastavro is handled: the primitive types,
 * records, enums, arrays, maps, fixed, unions of null and one other type, and
 * logical types on primitives, converted by fastavro's own functions for them.
 * Anything else (a value of another Python type, a missing field, a truncated
 * or malformed payload) raises ValueError, and the caller redoes that record
 * with fastavro, whose result or error is then the answer.  So this module
 * never decides a record's fate on its own; it only makes the common case fast.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum {
    OP_NULL, OP_BOOLEAN, OP_INT, OP_LONG, OP_FLOAT, OP_DOUBLE, OP_BYTES, OP_STRING,
    OP_RECORD, OP_ENUM, OP_ARRAY, OP_MAP, OP_OPTIONAL, OP_FIXED, OP_LOGICAL
};

typedef struct node {
    int op;
    Py_ssize_t count;        /* record fields; fixed size */
    int null_index;          /* optional: the null branch's index, 0 or 1 */
    PyObject **names;        /* record: field names (owned) */
    struct node **children;  /* record: one per field; array, map, optional: one */
    PyObject *symbols;       /* enum: tuple of symbols (owned) */
    PyObject *index;         /* enum: symbol -> index (owned) */
    PyObject *reader;        /* logical: fastavro's reader for the type, or None (owned) */
    PyObject *writer;        /* logical: fastavro's writer ("prepare") for the type, or None (owned) */
    PyObject *schema;        /* logical: the type's schema, which both take (owned) */
} node;

static PyObject *Unsupported;  /* raised for anything the caller must redo with fastavro */

static void
free_node(node *n)
{
    if (n == NULL)
        return;
    Py_ssize_t children = n->op == OP_RECORD ? n->count : (n->children ? 1 : 0);
    for (Py_ssize_t i = 0; i < children; i++)
        free_node(n->children[i]);
    if (n->names) {
        for (Py_ssize_t i = 0; i < n->count; i++)
            Py_XDECREF(n->names[i]);
        PyMem_Free(n->names);
    }
    PyMem_Free(n->children);
    Py_XDECREF(n->symbols);
    Py_XDECREF(n->index);
    Py_XDECREF(n->reader);
    Py_XDECREF(n->writer);
    Py_XDECREF(n->schema);
    PyMem_Free(n);
}

/* -- compiling a plan: (op,) | (OP_RECORD, names, plans) | (OP_ENUM, symbols)
 *    | (OP_ARRAY, plan) | (OP_MAP, plan) | (OP_OPTIONAL, null_index, plan) | (OP_FIXED, size)
 *    | (OP_LOGICAL, plan, reader, writer, schema) */

static node *
build(PyObject *plan)
{
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) < 1) {
        PyErr_SetString(PyExc_TypeError, "a plan node is a non-empty tuple");
        return NULL;
    }
    node *n = PyMem_Calloc(1, sizeof(node));
    if (n == NULL)
        return (node *)PyErr_NoMemory();
    n->op = (int)PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
    Py_ssize_t size = PyTuple_GET_SIZE(plan);
    switch (n->op) {
    case OP_NULL: case OP_BOOLEAN: case OP_INT: case OP_LONG: case OP_FLOAT: case OP_DOUBLE:
    case OP_BYTES: case OP_STRING:
        return n;
    case OP_RECORD: {
        PyObject *names = size == 3 ? PyTuple_GET_ITEM(plan, 1) : NULL;
        PyObject *plans = size == 3 ? PyTuple_GET_ITEM(plan, 2) : NULL;
        if (!names || !plans || !PyTuple_Check(names) || !PyTuple_Check(plans)
                || PyTuple_GET_SIZE(names) != PyTuple_GET_SIZE(plans))
            break;
        n->count = PyTuple_GET_SIZE(names);
        n->names = PyMem_Calloc(n->count ? n->count : 1, sizeof(PyObject *));
        n->children = PyMem_Calloc(n->count ? n->count : 1, sizeof(node *));
        if (!n->names || !n->children) {
            PyErr_NoMemory();
            free_node(n);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < n->count; i++) {
            PyObject *name = PyTuple_GET_ITEM(names, i);
            if (!PyUnicode_CheckExact(name))
                goto bad;
            Py_INCREF(name);
            PyUnicode_InternInPlace(&name);
            n->names[i] = name;
            if ((n->children[i] = build(PyTuple_GET_ITEM(plans, i))) == NULL) {
                free_node(n);
                return NULL;
            }
        }
        return n;
    }
    case OP_ENUM: {
        PyObject *symbols = size == 2 ? PyTuple_GET_ITEM(plan, 1) : NULL;
        if (!symbols || !PyTuple_Check(symbols))
            break;
        n->symbols = Py_NewRef(symbols);
        if ((n->index = PyDict_New()) == NULL) {
            free_node(n);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(symbols); i++) {
            PyObject *at = PyLong_FromSsize_t(i);
            if (!at || PyDict_SetItem(n->index, PyTuple_GET_ITEM(symbols, i), at) < 0) {
                Py_XDECREF(at);
                free_node(n);
                return NULL;
            }
            Py_DECREF(at);
        }
        return n;
    }
    case OP_ARRAY: case OP_MAP: case OP_OPTIONAL: case OP_LOGICAL: {
        Py_ssize_t at = n->op == OP_OPTIONAL ? 2 : 1;
        if (size != (n->op == OP_LOGICAL ? 5 : at + 1))
            break;
        if (n->op == OP_LOGICAL) {
            n->reader = Py_NewRef(PyTuple_GET_ITEM(plan, 2));
            n->writer = Py_NewRef(PyTuple_GET_ITEM(plan, 3));
            n->schema = Py_NewRef(PyTuple_GET_ITEM(plan, 4));
        }
        if (n->op == OP_OPTIONAL)
            n->null_index = (int)PyLong_AsLong(PyTuple_GET_ITEM(plan, 1)) ? 1 : 0;
        n->children = PyMem_Calloc(1, sizeof(node *));
        if (n->children == NULL) {
            PyErr_NoMemory();
            free_node(n);
            return NULL;
        }
        if ((n->children[0] = build(PyTuple_GET_ITEM(plan, at))) == NULL) {
            free_node(n);
            return NULL;
        }
        return n;
    }
    case OP_FIXED:
        if (size != 2)
            break;
        n->count = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 1));
        if (n->count < 0)
            break;
        return n;
    }
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "malformed plan node");
    free_node(n);
    return NULL;
}

static void
destroy_plan(PyObject *capsule)
{
    free_node(PyCapsule_GetPointer(capsule, "streams.avro.plan"));
}

static PyObject *
compile_plan(PyObject *module, PyObject *plan)
{
    node *root = build(plan);
    if (root == NULL)
        return NULL;
    PyObject *capsule = PyCapsule_New(root, "streams.avro.plan", destroy_plan);
    if (capsule == NULL)
        free_node(root);
    return capsule;
}

/* -- decoding */

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} reader;

static PyObject *
unsupported(const char *why)
{
    PyErr_SetString(Unsupported, why);
    return NULL;
}

static int
read_long(reader *r, int64_t *out)
{
    uint64_t n = 0;
    for (int shift = 0; r->p < r->end && shift < 64; shift += 7) {
        unsigned char b = *r->p++;
        if (shift == 63 && b > 1)
            break;
        n |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)((n >> 1) ^ (~(n & 1) + 1));
            return 0;
        }
    }
    unsupported("bad or truncated varint");
    return -1;
}

static int
read_length(reader *r, Py_ssize_t *out)
{
    int64_t n;
    if (read_long(r, &n) < 0)
        return -1;
    if (n < 0 || n > r->end - r->p) {
        unsupported("length out of range");
        return -1;
    }
    *out = (Py_ssize_t)n;
    return 0;
}

static PyObject *decode_node(node *n, reader *r);

/* Array and map blocks: a count, negated when a byte size follows it, until a count of 0. */
static int
read_block_count(reader *r, Py_ssize_t *out)
{
    int64_t count, bytes;
    if (read_long(r, &count) < 0)
        return -1;
    if (count < 0) {
        if (count == INT64_MIN || read_long(r, &bytes) < 0) {
            if (!PyErr_Occurred())
                unsupported("bad block count");
            return -1;
        }
        count = -count;
    }
    /* Items take a byte at least, except empty ones (null, fixed of size 0, records of them): a count
     * beyond the bytes left is a damaged payload, or many empty items, which fastavro reads. */
    if (count > r->end - r->p && count > 4096) {
        unsupported("block count out of range");
        return -1;
    }
    *out = (Py_ssize_t)count;
    return 0;
}

static PyObject *
decode_record(node *n, reader *r)
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n->count; i++) {
        PyObject *v = decode_node(n->children[i], r);
        if (v == NULL || PyDict_SetItem(d, n->names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyObject *
decode_array(node *n, reader *r)
{
    PyObject *list = PyList_New(0);
    Py_ssize_t count;
    if (list == NULL)
        return NULL;
    while (read_block_count(r, &count) == 0) {
        if (count == 0)
            return list;
        while (count--) {
            PyObject *v = decode_node(n->children[0], r);
            if (v == NULL || PyList_Append(list, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(v);
        }
    }
    Py_DECREF(list);
    return NULL;
}

static PyObject *
decode_map(node *n, reader *r)
{
    PyObject *d = PyDict_New();
    Py_ssize_t count, len;
    if (d == NULL)
        return NULL;
    while (read_block_count(r, &count) == 0) {
        if (count == 0)
            return d;
        while (count--) {
            if (read_length(r, &len) < 0)
                goto fail;
            PyObject *k = PyUnicode_DecodeUTF8((const char *)r->p, len, NULL);
            if (k == NULL)
                goto fail;
            r->p += len;
            PyObject *v = decode_node(n->children[0], r);
            if (v == NULL || PyDict_SetItem(d, k, v) < 0) {
                Py_DECREF(k);
                Py_XDECREF(v);
                goto fail;
            }
            Py_DECREF(k);
            Py_DECREF(v);
        }
    }
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *
decode_node(node *n, reader *r)
{
    int64_t v;
    Py_ssize_t len;
    switch (n->op) {
    case OP_NULL:
        Py_RETURN_NONE;
    case OP_BOOLEAN:
        if (r->p >= r->end)
            return unsupported("truncated");
        return PyBool_FromLong(*r->p++ != 0);
    case OP_INT: case OP_LONG:
        if (read_long(r, &v) < 0)
            return NULL;
        return PyLong_FromLongLong(v);
    case OP_FLOAT: {
        if (r->end - r->p < 4)
            return unsupported("truncated");
        uint32_t bits = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16
                        | (uint32_t)r->p[3] << 24;
        float f;
        memcpy(&f, &bits, 4);
        r->p += 4;
        return PyFloat_FromDouble((double)f);
    }
    case OP_DOUBLE: {
        if (r->end - r->p < 8)
            return unsupported("truncated");
        uint64_t bits = 0;
        for (int i = 7; i >= 0; i--)
            bits = bits << 8 | r->p[i];
        double d;
        memcpy(&d, &bits, 8);
        r->p += 8;
        return PyFloat_FromDouble(d);
    }
    case OP_BYTES: case OP_STRING: {
        if (read_length(r, &len) < 0)
            return NULL;
        const char *at = (const char *)r->p;
        r->p += len;
        return n->op == OP_BYTES ? PyBytes_FromStringAndSize(at, len) : PyUnicode_DecodeUTF8(at, len, NULL);
    }
    case OP_FIXED: {
        if (r->end - r->p < n->count)
            return unsupported("truncated");
        const char *at = (const char *)r->p;
        r->p += n->count;
        return PyBytes_FromStringAndSize(at, n->count);
    }
    case OP_RECORD:
        return decode_record(n, r);
    case OP_ENUM:
        if (read_long(r, &v) < 0)
            return NULL;
        if (v < 0 || v >= PyTuple_GET_SIZE(n->symbols))
            return unsupported("enum index out of range");
        return Py_NewRef(PyTuple_GET_ITEM(n->symbols, v));
    case OP_ARRAY:
        return decode_array(n, r);
    case OP_MAP:
        return decode_map(n, r);
    case OP_OPTIONAL:
        if (read_long(r, &v) < 0)
            return NULL;
        if (v == n->null_index)
            Py_RETURN_NONE;
        if (v != 1 - n->null_index)
            return unsupported("union index out of range");
        return decode_node(n->children[0], r);
    case OP_LOGICAL: {
        PyObject *raw = decode_node(n->children[0], r);
        if (raw == NULL || n->reader == Py_None)
            return raw;
        PyObject *value = PyObject_CallFunctionObjArgs(n->reader, raw, n->schema, Py_None, NULL);
        Py_DECREF(raw);
        return value;
    }
    }
    return unsupported("unknown op");
}

static node *
plan_of(PyObject *capsule)
{
    return PyCapsule_GetPointer(capsule, "streams.avro.plan");
}

static PyObject *
decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "decode(plan, data: bytes, offset: int)");
        return NULL;
    }
    node *root = plan_of(args[0]);
    Py_ssize_t offset = PyLong_AsSsize_t(args[2]);
    if (root == NULL || (offset == -1 && PyErr_Occurred()))
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(args[1]);
    if (offset < 0 || offset > size)
        return unsupported("offset out of range");
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    reader r = {data + offset, data + size};
    PyObject *value = decode_node(root, &r);
    if (value == NULL && !PyErr_ExceptionMatches(Unsupported)) {
        /* a UnicodeDecodeError and the like: still the caller's to redo with fastavro */
        PyErr_Clear();
        return unsupported("payload fastavro must read");
    }
    return value;
}

/* -- encoding */

typedef struct {
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
    char stack[512];
} writer;

static int
reserve(writer *w, Py_ssize_t more)
{
    if (w->len + more <= w->cap)
        return 0;
    Py_ssize_t cap = w->cap * 2;
    while (cap < w->len + more)
        cap *= 2;
    char *buf = w->buf == w->stack ? PyMem_Malloc(cap) : PyMem_Realloc(w->buf, cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (w->buf == w->stack)
        memcpy(buf, w->stack, w->len);
    w->buf = buf;
    w->cap = cap;
    return 0;
}

static int
write_long(writer *w, int64_t v)
{
    if (reserve(w, 10) < 0)
        return -1;
    uint64_t n = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (n & ~(uint64_t)0x7f) {
        w->buf[w->len++] = (char)((n & 0x7f) | 0x80);
        n >>= 7;
    }
    w->buf[w->len++] = (char)n;
    return 0;
}

static int
write_raw(writer *w, const char *data, Py_ssize_t len)
{
    if (reserve(w, len) < 0)
        return -1;
    memcpy(w->buf + w->len, data, len);
    w->len += len;
    return 0;
}

static int
write_string(writer *w, PyObject *obj)
{
    Py_ssize_t len;
    const char *utf8;
    if (!PyUnicode_CheckExact(obj) || (utf8 = PyUnicode_AsUTF8AndSize(obj, &len)) == NULL)
        return -1;
    return write_long(w, len) < 0 ? -1 : write_raw(w, utf8, len);
}

static int encode_node(node *n, PyObject *obj, writer *w);

static int
encode_items(node *n, PyObject *obj, writer *w)
{
    if (n->op == OP_ARRAY) {
        if (!PyList_CheckExact(obj))
            return -1;
        Py_ssize_t size = PyList_GET_SIZE(obj);
        if (size && write_long(w, size) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(obj); i++)
            if (encode_node(n->children[0], PyList_GET_ITEM(obj, i), w) < 0)
                return -1;
        return write_long(w, 0);
    }
    if (!PyDict_CheckExact(obj))
        return -1;
    Py_ssize_t size = PyDict_GET_SIZE(obj), pos = 0;
    PyObject *k, *v;
    if (size && write_long(w, size) < 0)
        return -1;
    while (PyDict_Next(obj, &pos, &k, &v))
        if (write_string(w, k) < 0 || encode_node(n->children[0], v, w) < 0)
            return -1;
    return write_long(w, 0);
}

static int
encode_node(node *n, PyObject *obj, writer *w)
{
    int overflow;
    long long v;
    switch (n->op) {
    case OP_NULL:
        return obj == Py_None ? 0 : -1;
    case OP_BOOLEAN:
        if (obj != Py_True && obj != Py_False)
            return -1;
        if (reserve(w, 1) < 0)
            return -1;
        w->buf[w->len++] = obj == Py_True;
        return 0;
    case OP_INT: case OP_LONG:
        if (!PyLong_CheckExact(obj))
            return -1;
        v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow || (n->op == OP_INT && (v < INT32_MIN || v > INT32_MAX)))
            return -1;  /* fastavro decides: it writes some, and refuses others inside a union */
        return write_long(w, v);
    case OP_FLOAT: case OP_DOUBLE: {
        if (!PyFloat_CheckExact(obj))
            return -1;
        double d = PyFloat_AS_DOUBLE(obj);
        uint64_t bits = 0;
        int size = 8;
        if (n->op == OP_FLOAT) {
            float f = (float)d;
            if (isinf(f) && !isinf(d))
                return -1;
            uint32_t b32;
            memcpy(&b32, &f, 4);
            bits = b32;
            size = 4;
        } else {
            memcpy(&bits, &d, 8);
        }
        if (reserve(w, size) < 0)
            return -1;
        for (int i = 0; i < size; i++, bits >>= 8)
            w->buf[w->len++] = (char)(bits & 0xff);
        return 0;
    }
    case OP_BYTES:
        if (!PyBytes_CheckExact(obj))
            return -1;
        if (write_long(w, PyBytes_GET_SIZE(obj)) < 0)
            return -1;
        return write_raw(w, PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj));
    case OP_STRING:
        return write_string(w, obj);
    case OP_FIXED:
        if (!PyBytes_CheckExact(obj) || PyBytes_GET_SIZE(obj) != n->count)
            return -1;
        return write_raw(w, PyBytes_AS_STRING(obj), n->count);
    case OP_RECORD:
        if (!PyDict_Check(obj))
            return -1;
        for (Py_ssize_t i = 0; i < n->count; i++) {
            PyObject *v = PyDict_GetItemWithError(obj, n->names[i]);
            if (v == NULL || encode_node(n->children[i], v, w) < 0)
                return -1;  /* a missing field: fastavro applies the default, or refuses */
        }
        return 0;
    case OP_ENUM: {
        if (!PyUnicode_CheckExact(obj))
            return -1;
        PyObject *at = PyDict_GetItemWithError(n->index, obj);
        return at == NULL ? -1 : write_long(w, PyLong_AsLongLong(at));
    }
    case OP_ARRAY: case OP_MAP:
        return encode_items(n, obj, w);
    case OP_OPTIONAL:
        if (obj == Py_None)
            return write_long(w, n->null_index);
        if (write_long(w, 1 - n->null_index) < 0)
            return -1;
        return encode_node(n->children[0], obj, w);
    case OP_LOGICAL: {
        if (n->writer == Py_None)
            return encode_node(n->children[0], obj, w);
        PyObject *prepared = PyObject_CallFunctionObjArgs(n->writer, obj, n->schema, NULL);
        if (prepared == NULL)
            return -1;
        int done = encode_node(n->children[0], prepared, w);
        Py_DECREF(prepared);
        return done;
    }
    }
    return -1;
}

static PyObject *
encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode(plan, value)");
        return NULL;
    }
    node *root = plan_of(args[0]);
    if (root == NULL)
        return NULL;
    writer w;
    w.buf = w.stack;
    w.len = 0;
    w.cap = sizeof(w.stack);
    PyObject *out = NULL;
    if (encode_node(root, args[1], &w) == 0)
        out = PyBytes_FromStringAndSize(w.buf, w.len);
    else {
        PyErr_Clear();
        PyErr_SetString(Unsupported, "value fastavro must write");
    }
    if (w.buf != w.stack)
        PyMem_Free(w.buf);
    return out;
}

static PyMethodDef methods[] = {
    {"compile", compile_plan, METH_O, "compile(plan) -> a compiled plan for encode() and decode()"},
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL, "encode(plan, value) -> Avro bytes"},
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL,
     "decode(plan, data, offset) -> the value encoded in data from offset on"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_avrofast",
    "Avro encoding compiled per schema; raises Unsupported for what fastavro must handle.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__avrofast(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    Unsupported = PyErr_NewException("streams.schema_registry._avrofast.Unsupported", PyExc_ValueError, NULL);
    if (Unsupported == NULL || PyModule_AddObjectRef(m, "Unsupported", Unsupported) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
