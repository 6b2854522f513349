/* Hardware abstraction layer of the array board.
 *
 * On the board these drive the word-line / bit-line / source-line decoders, the 16-bit gate
 * DAC and the gate-rail source switch. On the host build they are implemented by hal_stub.c,
 * which only records the requested state.
 */
#ifndef ARRAY_BOARD_HAL_H
#define ARRAY_BOARD_HAL_H

#include <stdint.h>

#define HAL_RELEASED (-1)

void hal_select_word_line(int row);   /* row, or HAL_RELEASED */
void hal_select_bit_line(int col);    /* col, or HAL_RELEASED */
void hal_select_source_line(int row); /* row, or HAL_RELEASED */
void hal_set_gate_dac(uint16_t code);
void hal_gate_source_external(int external); /* 0: DAC drives the gate rail, 1: external input */

#endif
