/* Array board command handling (see PROTOCOL.md). Pure C99, no dynamic memory, no stdio. */
#include "board.h"

#include <string.h>

#include "hal.h"

uint16_t crc16_ccitt(const char *data, size_t len)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)data[i]) << 8;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* ------------------------------------------------------------------ small string helpers */
typedef struct {
    char *buf;
    size_t cap, len;
} out_t;

static void put(out_t *o, const char *s)
{
    while (*s && o->len + 1 < o->cap)
        o->buf[o->len++] = *s++;
    o->buf[o->len] = '\0';
}

static void put_uint(out_t *o, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof tmp);
    char s[24];
    for (int i = 0; i < n; i++)
        s[i] = tmp[n - 1 - i];
    s[n] = '\0';
    put(o, s);
}

static void put_line_or_dash(out_t *o, int v)
{
    if (v < 0)
        put(o, "-");
    else
        put_uint(o, (unsigned long)v);
}

static const char HEX[] = "0123456789ABCDEF";

static void put_hex16(out_t *o, uint16_t v)
{
    char s[5] = {HEX[(v >> 12) & 15], HEX[(v >> 8) & 15], HEX[(v >> 4) & 15], HEX[v & 15], 0};
    put(o, s);
}

/* Frame the body in o->buf: append "*CRC\n". Returns the total length. */
static size_t frame(out_t *o)
{
    uint16_t crc = crc16_ccitt(o->buf, o->len);
    put(o, "*");
    put_hex16(o, crc);
    put(o, "\n");
    return o->len;
}

static size_t reply_err(char *reply, size_t cap, int code, const char *what)
{
    out_t o = {reply, cap, 0};
    reply[0] = '\0';
    put(&o, "ERR ");
    put_uint(&o, (unsigned long)code);
    put(&o, " ");
    put(&o, what);
    return frame(&o);
}

/* Tokeniser over the body (space separated). */
typedef struct {
    const char *p, *end;
} tok_t;

static int next_token(tok_t *t, const char **start, size_t *len)
{
    while (t->p < t->end && *t->p == ' ')
        t->p++;
    if (t->p >= t->end)
        return 0;
    *start = t->p;
    while (t->p < t->end && *t->p != ' ')
        t->p++;
    *len = (size_t)(t->p - *start);
    return 1;
}

static int token_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* Decimal unsigned integer, at most max. Returns 1 on success. */
static int parse_uint(const char *s, size_t n, unsigned long max, unsigned long *out)
{
    if (n == 0 || n > 9)
        return 0;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return 0;
    *out = v;
    return 1;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_hex16(const char *s, uint16_t *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(s[i]);
        if (d < 0)
            return 0;
        v = (v << 4) | (unsigned)d;
    }
    *out = (uint16_t)v;
    return 1;
}

/* ------------------------------------------------------------------ board state */
static void apply_lines(board_t *b)
{
    hal_select_word_line(b->wl);
    hal_select_bit_line(b->bl);
    hal_select_source_line(b->sl);
}

static void apply_entry(board_t *b)
{
    const cell_entry_t *e = &b->list[b->pointer];
    b->wl = e->row;
    b->bl = e->col;
    b->sl = e->row;
    apply_lines(b);
    if (!b->gate_external) {
        b->dac = e->gate;
        hal_set_gate_dac(b->dac);
    }
}

static void release_all(board_t *b)
{
    b->wl = b->bl = b->sl = -1;
    b->dac = 0;
    b->armed = 0;
    b->pointer = 0;
    apply_lines(b);
    hal_set_gate_dac(0);
}

void board_init(board_t *b)
{
    memset(b, 0, sizeof *b);
    b->gate_external = 0;
    hal_gate_source_external(0);
    release_all(b);
}

void board_trigger(board_t *b)
{
    b->triggers++;
    if (b->armed > 0) {
        b->pointer = (b->pointer + 1) % b->armed;
        apply_entry(b);
    }
}

size_t board_line_too_long(char *reply, size_t cap)
{
    return reply_err(reply, cap, 4, "LINE");
}

/* ------------------------------------------------------------------ commands */
static size_t cmd_line(board_t *b, tok_t *t, const char *word, int *field, int limit, char *reply, size_t cap)
{
    const char *a;
    size_t n;
    unsigned long v;
    if (!next_token(t, &a, &n))
        return reply_err(reply, cap, 3, word);
    if (token_is(a, n, "OFF"))
        *field = -1;
    else if (parse_uint(a, n, (unsigned long)(limit - 1), &v))
        *field = (int)v;
    else
        return reply_err(reply, cap, 3, word);
    if (next_token(t, &a, &n))
        return reply_err(reply, cap, 3, word);
    b->armed = 0;
    apply_lines(b);
    out_t o = {reply, cap, 0};
    put(&o, "OK ");
    put(&o, word);
    put(&o, " ");
    if (*field < 0)
        put(&o, "OFF");
    else
        put_uint(&o, (unsigned long)*field);
    return frame(&o);
}

static size_t cmd_load(board_t *b, tok_t *t, char *reply, size_t cap)
{
    const char *a, *h;
    size_t n, hn;
    unsigned long offset, total;
    if (!next_token(t, &a, &n) || !parse_uint(a, n, MAX_LIST - 1, &offset))
        return reply_err(reply, cap, 3, "LOAD");
    if (!next_token(t, &a, &n) || !parse_uint(a, n, MAX_LIST, &total) || total == 0)
        return reply_err(reply, cap, 3, "LOAD");
    if (!next_token(t, &h, &hn) || hn == 0 || next_token(t, &a, &n))
        return reply_err(reply, cap, 3, "LOAD");
    if (hn % 12 != 0)
        return reply_err(reply, cap, 6, "LOAD");
    size_t count = hn / 12;
    if (count > MAX_LOAD_ENTRIES || offset + count > total)
        return reply_err(reply, cap, 5, "LOAD");
    /* Validate everything before storing anything: a refused LOAD has no effect. */
    for (size_t i = 0; i < count; i++) {
        uint16_t r, c, g;
        if (!parse_hex16(h + 12 * i, &r) || !parse_hex16(h + 12 * i + 4, &c) || !parse_hex16(h + 12 * i + 8, &g))
            return reply_err(reply, cap, 6, "LOAD");
        if (r >= BOARD_ROWS || c >= BOARD_COLS)
            return reply_err(reply, cap, 3, "LOAD");
#if DAC_MAX_CODE < 65535u
        if (g > DAC_MAX_CODE)
            return reply_err(reply, cap, 3, "LOAD");
#endif
    }
    for (size_t i = 0; i < count; i++) {
        cell_entry_t *e = &b->list[offset + i];
        parse_hex16(h + 12 * i, &e->row);
        parse_hex16(h + 12 * i + 4, &e->col);
        parse_hex16(h + 12 * i + 8, &e->gate);
    }
    b->armed = (int)total;
    b->pointer = 0;
    apply_entry(b);
    out_t o = {reply, cap, 0};
    put(&o, "OK LOAD ");
    put_uint(&o, offset);
    put(&o, " ");
    put_uint(&o, (unsigned long)count);
    put(&o, " ");
    put_uint(&o, total);
    put(&o, " ");
    put_hex16(&o, crc16_ccitt(h, hn));
    return frame(&o);
}

static size_t dispatch(board_t *b, const char *body, size_t len, char *reply, size_t cap)
{
    tok_t t = {body, body + len};
    const char *w, *a;
    size_t wn, n;
    unsigned long v;
    out_t o = {reply, cap, 0};
    reply[0] = '\0';
    if (!next_token(&t, &w, &wn))
        return reply_err(reply, cap, 2, "EMPTY");

    if (token_is(w, wn, "IDN?")) {
        put(&o, "OK IDN HIL-LAB,AB-1T1R,0001," FW_VERSION ",");
        put_uint(&o, BOARD_ROWS);
        put(&o, "x");
        put_uint(&o, BOARD_COLS);
        return frame(&o);
    }
    if (token_is(w, wn, "RST")) {
        b->gate_external = 0;
        hal_gate_source_external(0);
        release_all(b);
        put(&o, "OK RST");
        return frame(&o);
    }
    if (token_is(w, wn, "OFF")) {
        release_all(b);
        put(&o, "OK OFF");
        return frame(&o);
    }
    if (token_is(w, wn, "SEL")) {
        unsigned long r, c;
        if (!next_token(&t, &a, &n) || !parse_uint(a, n, BOARD_ROWS - 1, &r))
            return reply_err(reply, cap, 3, "SEL");
        if (!next_token(&t, &a, &n) || !parse_uint(a, n, BOARD_COLS - 1, &c) || next_token(&t, &a, &n))
            return reply_err(reply, cap, 3, "SEL");
        b->armed = 0;
        b->wl = b->sl = (int)r;
        b->bl = (int)c;
        apply_lines(b);
        put(&o, "OK SEL ");
        put_uint(&o, r);
        put(&o, " ");
        put_uint(&o, c);
        return frame(&o);
    }
    if (token_is(w, wn, "WL"))
        return cmd_line(b, &t, "WL", &b->wl, BOARD_ROWS, reply, cap);
    if (token_is(w, wn, "BL"))
        return cmd_line(b, &t, "BL", &b->bl, BOARD_COLS, reply, cap);
    if (token_is(w, wn, "SL"))
        return cmd_line(b, &t, "SL", &b->sl, BOARD_ROWS, reply, cap);
    if (token_is(w, wn, "DAC")) {
        if (!next_token(&t, &a, &n) || !parse_uint(a, n, DAC_MAX_CODE, &v) || next_token(&t, &a, &n))
            return reply_err(reply, cap, 3, "DAC");
        b->dac = (uint16_t)v;
        hal_set_gate_dac(b->dac);
        put(&o, "OK DAC ");
        put_uint(&o, v);
        return frame(&o);
    }
    if (token_is(w, wn, "GSRC")) {
        if (!next_token(&t, &a, &n))
            return reply_err(reply, cap, 3, "GSRC");
        int ext;
        if (token_is(a, n, "DAC"))
            ext = 0;
        else if (token_is(a, n, "EXT"))
            ext = 1;
        else
            return reply_err(reply, cap, 3, "GSRC");
        if (next_token(&t, &a, &n))
            return reply_err(reply, cap, 3, "GSRC");
        b->gate_external = ext;
        hal_gate_source_external(ext);
        put(&o, ext ? "OK GSRC EXT" : "OK GSRC DAC");
        return frame(&o);
    }
    if (token_is(w, wn, "LOAD"))
        return cmd_load(b, &t, reply, cap);
    if (token_is(w, wn, "TRIG")) {
        unsigned long k = 1;
        if (next_token(&t, &a, &n) && !parse_uint(a, n, 1000000, &k))
            return reply_err(reply, cap, 3, "TRIG");
        if (next_token(&t, &a, &n))
            return reply_err(reply, cap, 3, "TRIG");
        if (b->armed == 0)
            return reply_err(reply, cap, 7, "TRIG");
        for (unsigned long i = 0; i < k; i++)
            board_trigger(b);
        put(&o, "OK TRIG ");
        put_uint(&o, (unsigned long)b->pointer);
        return frame(&o);
    }
    if (token_is(w, wn, "STAT?")) {
        put(&o, "OK STAT ");
        put_line_or_dash(&o, b->wl);
        put(&o, " ");
        put_line_or_dash(&o, b->bl);
        put(&o, " ");
        put_line_or_dash(&o, b->sl);
        put(&o, " ");
        put_uint(&o, b->dac);
        put(&o, b->gate_external ? " EXT " : " DAC ");
        put_uint(&o, (unsigned long)b->armed);
        put(&o, " ");
        put_uint(&o, (unsigned long)b->pointer);
        put(&o, " ");
        put_uint(&o, b->triggers);
        return frame(&o);
    }
    return reply_err(reply, cap, 2, "UNKNOWN");
}

size_t board_handle_line(board_t *b, const char *line, size_t len, char *reply, size_t cap)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    /* "<body>*XXXX": the CRC covers the body. */
    if (len < 5 || line[len - 5] != '*')
        return reply_err(reply, cap, 1, "CRC");
    uint16_t sent;
    if (!parse_hex16(line + len - 4, &sent) || sent != crc16_ccitt(line, len - 5))
        return reply_err(reply, cap, 1, "CRC");
    for (size_t i = 0; i < len - 5; i++)
        if (line[i] == '*' || (unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7E)
            return reply_err(reply, cap, 3, "CHAR");
    return dispatch(b, line, len - 5, reply, cap);
}
