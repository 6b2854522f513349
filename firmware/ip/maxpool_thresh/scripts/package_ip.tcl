# Packages the maxpool_thresh RTL as a Vivado IP (IP-XACT) with its AXI-Lite register map.
#
# NOT RUN IN THIS REPOSITORY: there is no Vivado here. Written from the documented ipx:: commands
# (UG1118) and checked only by tests/drivers/test_overlay_reference.py, which compares the
# registers declared below with drivers/overlay/regmap.py. Run it once on a machine with Vivado:
#     vivado -mode batch -source firmware/ip/maxpool_thresh/scripts/package_ip.tcl
# It writes firmware/ip/maxpool_thresh/build/ip_repo/ (not committed).
#
# The registers are declared on the S_AXI_CTRL memory map so that Vivado copies them into the
# block design's .hwh; pynq then builds ip.register_map from them.

set script_dir [file dirname [file normalize [info script]]]
set ip_dir     [file normalize [file join $script_dir ..]]
set repo_dir   [file join $ip_dir build ip_repo]
set part       xc7z020clg400-1

create_project -force maxpool_thresh_pkg [file join $ip_dir build pkg_project] -part $part
add_files -norecurse [list \
    [file join $ip_dir rtl maxpool_thresh.v] \
    [file join $ip_dir rtl maxpool_thresh_regs.v] \
    [file join $ip_dir rtl maxpool_thresh_core.v]]
set_property top maxpool_thresh [current_fileset]
update_compile_order -fileset sources_1

ipx::package_project -root_dir $repo_dir -vendor memristor-hil.org -library hil \
    -taxonomy /UserIP -import_files -set_current true
set core [ipx::current_core]
set_property name         maxpool_thresh $core
set_property version      1.0 $core
set_property display_name "Max-pool and V_REF threshold" $core
set_property description  "Max-pools MVM results per filter, compares with per-filter V_REF, streams the packed binary feature map" $core
set_property supported_families {zynq Production} $core

# Bus interfaces are inferred from the port names (s_axi_ctrl_*, s_axis_*, m_axis_*, aclk,
# aresetn); make the clock association explicit.
ipx::infer_bus_interfaces xilinx.com:interface:aximm_rtl:1.0 $core
ipx::infer_bus_interfaces xilinx.com:interface:axis_rtl:1.0 $core
foreach busif {s_axi_ctrl s_axis m_axis} {
    ipx::associate_bus_interfaces -busif $busif -clock aclk $core
}
ipx::associate_bus_interfaces -clock aclk -reset aresetn $core

# Memory map, address block (4 KiB) and registers: offsets as drivers/overlay/regmap.py.
set mm [ipx::add_memory_map s_axi_ctrl $core]
set_property slave_memory_map_ref s_axi_ctrl [ipx::get_bus_interfaces s_axi_ctrl -of_objects $core]
set ab [ipx::add_address_block Reg $mm]
set_property range 4096 $ab
set_property width 32 $ab
set_property usage register $ab

proc add_register {name offset access description} {
    global ab
    set reg [ipx::add_register $name $ab]
    set_property address_offset $offset $reg
    set_property size 32 $reg
    set_property description $description $reg
    set field [ipx::add_field VALUE $reg]
    set_property bit_offset 0 $field
    set_property bit_width 32 $field
    set_property access $access $field
}

add_register CTRL        0x00 read-write "bit0 enable, bit1 soft reset (self-clearing)"
add_register STATUS      0x04 read-write "bit0 busy, bit1 discarding, bit8 early TLAST, bit9 late TLAST, bit10 config error; errors write-1-to-clear"
add_register WIDTH       0x08 read-write "image width in pixels"
add_register HEIGHT      0x0C read-write "image height in pixels"
add_register NUM_FILTERS 0x10 read-write "filters (values per pixel)"
add_register POOL_W      0x14 read-write "pooling window width"
add_register POOL_H      0x18 read-write "pooling window height"
add_register STRIDE_W    0x1C read-write "pooling stride in x"
add_register STRIDE_H    0x20 read-write "pooling stride in y"
add_register FRAMES      0x24 read-write "frames per AXI-Stream packet"
add_register FRAME_COUNT 0x28 read-only  "frames completed"
add_register ERROR_COUNT 0x2C read-only  "malformed packets"
add_register VERSION     0x30 read-only  "core version"
add_register CAPS        0x34 read-only  "max filters, data bits, acc depth/16"
# VREF_0 .. VREF_63 from 0x100, one 32-bit word each (signed 16-bit code, sign-extended)
for {set f 0} {$f < 64} {incr f} {
    add_register VREF_$f [format 0x%X [expr {0x100 + 4 * $f}]] read-write "V_REF of filter $f, signed Q-format"
}

ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity $core
ipx::save_core $core
close_project
puts "maxpool_thresh packaged into $repo_dir"
