/* Stub hardware layer for the host build: records what the board asked for. */
#include "hal.h"

int stub_word_line = HAL_RELEASED;
int stub_bit_line = HAL_RELEASED;
int stub_source_line = HAL_RELEASED;
uint16_t stub_gate_dac = 0;
int stub_gate_external = 0;

void hal_select_word_line(int row) { stub_word_line = row; }
void hal_select_bit_line(int col) { stub_bit_line = col; }
void hal_select_source_line(int row) { stub_source_line = row; }
void hal_set_gate_dac(uint16_t code) { stub_gate_dac = code; }
void hal_gate_source_external(int external) { stub_gate_external = external; }
