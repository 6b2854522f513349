/* Array board command handling: the protocol of PROTOCOL.md, independent of the transport. */
#ifndef ARRAY_BOARD_BOARD_H
#define ARRAY_BOARD_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifndef BOARD_ROWS
#define BOARD_ROWS 128
#endif
#ifndef BOARD_COLS
#define BOARD_COLS 128
#endif
#ifndef DAC_MAX_CODE
#define DAC_MAX_CODE 65535u
#endif
#define MAX_LINE 12300
#define MAX_LIST 4096
#define MAX_LOAD_ENTRIES 1000
#define FW_VERSION "1.0.0"

typedef struct {
    uint16_t row, col, gate;
} cell_entry_t;

typedef struct {
    int wl, bl, sl;          /* selected lines, -1 when released */
    uint16_t dac;            /* gate DAC code */
    int gate_external;       /* gate rail from the external input */
    int armed;               /* list length when armed, else 0 */
    int pointer;             /* entry applied now */
    uint32_t triggers;       /* trigger edges since power-up */
    cell_entry_t list[MAX_LIST];
} board_t;

void board_init(board_t *b);

/* Handle one line (without its terminator). Writes the framed reply, terminator included,
 * into reply (capacity cap) and returns its length. */
size_t board_handle_line(board_t *b, const char *line, size_t len, char *reply, size_t cap);

/* Reply for a line that exceeded MAX_LINE. */
size_t board_line_too_long(char *reply, size_t cap);

/* One trigger edge on the trigger input (the ISR calls this on the board). */
void board_trigger(board_t *b);

uint16_t crc16_ccitt(const char *data, size_t len);

#endif
