# Creates the Vivado project and block design of the maxpool_thresh overlay on a PYNQ-Z2.
#
# NOT RUN IN THIS REPOSITORY (no Vivado here): written from the documented Vivado TCL commands
# (UG994, UG835) and the conventions of Xilinx's PYNQ overlay scripts; see firmware/README.md.
# The stand-in .hwh used in simulation (drivers/overlay/sim_hwh.py) mirrors the instances,
# addresses and DMA parameters set here; keep them in step.
#
# Block design:
#   PS7 (FCLK_CLK0 = 100 MHz, M_AXI_GP0, S_AXI_HP0 64-bit)
#   AXI DMA 7.1, simple mode (no scatter-gather), 26-bit buffer length (64 MiB per transfer),
#       MM2S and S2MM 32-bit, interrupts not connected (the driver polls with a timeout)
#   AXI4-Stream width converter 4 -> 2 bytes (one 16-bit MVM value per beat into the IP)
#   maxpool_thresh_0 (memristor-hil.org:hil:maxpool_thresh:1.0)
#   Address map: axi_dma_0 0x4040_0000 (64 KiB), maxpool_thresh_0 0x43C0_0000 (4 KiB)

set overlay_name maxpool_thresh
set design_name  maxpool_thresh
set script_dir   [file dirname [file normalize [info script]]]
set ip_repo      [file normalize [file join $script_dir .. .. .. ip maxpool_thresh build ip_repo]]

create_project -force $overlay_name [file join $script_dir $overlay_name] -part xc7z020clg400-1
# The TUL PYNQ-Z2 board files give the PS7 preset (DDR, MIO); without them the preset below
# (apply_board_preset) is skipped and the DDR/MIO settings must be entered by hand.
if {[llength [get_board_parts -quiet tul.com.tw:pynq-z2:part0:*]] > 0} {
    set_property board_part [lindex [get_board_parts tul.com.tw:pynq-z2:part0:*] end] [current_project]
}
set_property ip_repo_paths [list $ip_repo] [current_project]
update_ip_catalog

create_bd_design $design_name
current_bd_design $design_name

# --- Zynq PS
set ps7 [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 processing_system7_0]
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
    -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps7
set_property -dict [list \
    CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {100} \
    CONFIG.PCW_USE_M_AXI_GP0 {1} \
    CONFIG.PCW_USE_S_AXI_HP0 {1} \
    CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64}] $ps7

# --- AXI DMA: simple mode, buffer length register wide enough for whole batches
set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 axi_dma_0]
set_property -dict [list \
    CONFIG.c_include_sg {0} \
    CONFIG.c_sg_include_stscntrl_strm {0} \
    CONFIG.c_sg_length_width {26} \
    CONFIG.c_include_mm2s {1} \
    CONFIG.c_include_s2mm {1} \
    CONFIG.c_m_axi_mm2s_data_width {32} \
    CONFIG.c_m_axis_mm2s_tdata_width {32} \
    CONFIG.c_m_axi_s2mm_data_width {32} \
    CONFIG.c_s_axis_s2mm_tdata_width {32} \
    CONFIG.c_mm2s_burst_size {16} \
    CONFIG.c_s2mm_burst_size {16}] $dma

# --- 32-bit DMA stream -> 16-bit MVM values (low half-word first, TLAST kept)
set conv [create_bd_cell -type ip -vlnv xilinx.com:ip:axis_dwidth_converter:1.1 axis_dwidth_converter_0]
set_property -dict [list CONFIG.S_TDATA_NUM_BYTES {4} CONFIG.M_TDATA_NUM_BYTES {2}] $conv

# --- the IP
set mp [create_bd_cell -type ip -vlnv memristor-hil.org:hil:maxpool_thresh:1.0 maxpool_thresh_0]

# --- streams
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S] [get_bd_intf_pins axis_dwidth_converter_0/S_AXIS]
connect_bd_intf_net [get_bd_intf_pins axis_dwidth_converter_0/M_AXIS] [get_bd_intf_pins maxpool_thresh_0/s_axis]
connect_bd_intf_net [get_bd_intf_pins maxpool_thresh_0/m_axis] [get_bd_intf_pins axi_dma_0/S_AXIS_S2MM]

# --- control (M_AXI_GP0) and memory (S_AXI_HP0) paths; the automation adds the interconnects,
#     rst_ps7_0_100M and the FCLK_CLK0 clock nets
foreach slave {axi_dma_0/S_AXI_LITE maxpool_thresh_0/s_axi_ctrl} {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list \
        Clk_master {/processing_system7_0/FCLK_CLK0 (100 MHz)} Clk_slave {Auto} Clk_xbar {Auto} \
        Master {/processing_system7_0/M_AXI_GP0} Slave /$slave \
        intc_ip {New AXI Interconnect} master_apm {0}] [get_bd_intf_pins $slave]
}
foreach master {axi_dma_0/M_AXI_MM2S axi_dma_0/M_AXI_S2MM} {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list \
        Clk_master {/processing_system7_0/FCLK_CLK0 (100 MHz)} Clk_slave {Auto} Clk_xbar {Auto} \
        Master /$master Slave {/processing_system7_0/S_AXI_HP0} \
        intc_ip {Auto} master_apm {0}] [get_bd_intf_pins processing_system7_0/S_AXI_HP0]
}
# clock and reset of the stream-only blocks (the automation connects the AXI-Lite side)
foreach pin {axis_dwidth_converter_0/aclk maxpool_thresh_0/aclk} {
    if {[llength [get_bd_nets -quiet -of_objects [get_bd_pins $pin]]] == 0} {
        connect_bd_net [get_bd_pins processing_system7_0/FCLK_CLK0] [get_bd_pins $pin]
    }
}
set rst [lindex [get_bd_cells -quiet rst_ps7_0_*] 0]
foreach pin {axis_dwidth_converter_0/aresetn maxpool_thresh_0/aresetn} {
    if {[llength [get_bd_nets -quiet -of_objects [get_bd_pins $pin]]] == 0} {
        connect_bd_net [get_bd_pins $rst/peripheral_aresetn] [get_bd_pins $pin]
    }
}

# --- addresses (as drivers/overlay/sim_hwh.py)
assign_bd_address
proc place_segment {pattern offset range} {
    foreach seg [get_bd_addr_segs -of_objects [get_bd_addr_spaces processing_system7_0/Data]] {
        if {[string match $pattern [get_property NAME $seg]]} {
            set_property offset $offset $seg
            set_property range $range $seg
            return
        }
    }
    error "no address segment matching $pattern"
}
place_segment *axi_dma_0*        0x40400000 64K
place_segment *maxpool_thresh_0* 0x43C00000 4K

validate_bd_design
save_bd_design

# --- HDL wrapper as top
set bd_file [get_files $design_name.bd]
set wrapper [make_wrapper -files $bd_file -top]
add_files -norecurse $wrapper
set_property top ${design_name}_wrapper [current_fileset]
update_compile_order -fileset sources_1
close_project
