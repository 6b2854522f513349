# Synthesises and implements the maxpool_thresh overlay and collects .bit + .hwh for PYNQ.
#
# NOT RUN IN THIS REPOSITORY (no Vivado here); see firmware/README.md.
# The .hwh is the block design's hardware handoff: pynq reads the IP's VLNV, its address and
# the registers declared by package_ip.tcl from it.

set overlay_name maxpool_thresh
set script_dir   [file dirname [file normalize [info script]]]
set out_dir      [file join $script_dir overlay]

open_project [file join $script_dir $overlay_name $overlay_name.xpr]
reset_run synth_1
launch_runs impl_1 -to_step write_bitstream -jobs 2
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    error "implementation of $overlay_name failed; see the run logs"
}
if {[get_property STATS.WNS [get_runs impl_1]] < 0} {
    puts "WARNING: timing not met at 100 MHz (WNS [get_property STATS.WNS [get_runs impl_1]] ns)"
}

file mkdir $out_dir
set impl_dir [get_property DIRECTORY [get_runs impl_1]]
file copy -force [file join $impl_dir ${overlay_name}_wrapper.bit] [file join $out_dir $overlay_name.bit]

# Vivado 2020.2+ keeps the hardware handoff under .gen, older releases under .srcs
set hwh [glob -nocomplain \
    [file join $script_dir $overlay_name $overlay_name.gen sources_1 bd $overlay_name hw_handoff $overlay_name.hwh] \
    [file join $script_dir $overlay_name $overlay_name.srcs sources_1 bd $overlay_name hw_handoff $overlay_name.hwh]]
if {[llength $hwh] == 0} { error "no $overlay_name.hwh found" }
file copy -force [lindex $hwh 0] [file join $out_dir $overlay_name.hwh]
close_project
puts "overlay written to $out_dir"
