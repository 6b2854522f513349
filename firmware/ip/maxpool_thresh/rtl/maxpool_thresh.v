// maxpool_thresh: top level of the max-pool / V_REF threshold IP.
// Port names follow Xilinx interface-inference conventions (s_axi_ctrl_*, s_axis_*, m_axis_*,
// aclk, aresetn) so that IP packaging infers S_AXI_CTRL, S_AXIS and M_AXIS.
`timescale 1ns / 1ps
`default_nettype none

module maxpool_thresh #(
    parameter integer DATA_W      = 16,
    parameter integer MAX_FILTERS = 64,
    parameter integer ACC_DEPTH   = 4096,
    parameter integer ACC_AW      = 12,
    parameter integer FIFO_AW     = 3
) (
    input  wire              aclk,
    input  wire              aresetn,
    // AXI4-Lite control
    input  wire [11:0]       s_axi_ctrl_awaddr,
    input  wire [2:0]        s_axi_ctrl_awprot,
    input  wire              s_axi_ctrl_awvalid,
    output wire              s_axi_ctrl_awready,
    input  wire [31:0]       s_axi_ctrl_wdata,
    input  wire [3:0]        s_axi_ctrl_wstrb,
    input  wire              s_axi_ctrl_wvalid,
    output wire              s_axi_ctrl_wready,
    output wire [1:0]        s_axi_ctrl_bresp,
    output wire              s_axi_ctrl_bvalid,
    input  wire              s_axi_ctrl_bready,
    input  wire [11:0]       s_axi_ctrl_araddr,
    input  wire [2:0]        s_axi_ctrl_arprot,
    input  wire              s_axi_ctrl_arvalid,
    output wire              s_axi_ctrl_arready,
    output wire [31:0]       s_axi_ctrl_rdata,
    output wire [1:0]        s_axi_ctrl_rresp,
    output wire              s_axi_ctrl_rvalid,
    input  wire              s_axi_ctrl_rready,
    // AXI4-Stream in: MVM values
    input  wire [DATA_W-1:0] s_axis_tdata,
    input  wire              s_axis_tvalid,
    output wire              s_axis_tready,
    input  wire              s_axis_tlast,
    // AXI4-Stream out: packed feature map
    output wire [31:0]       m_axis_tdata,
    output wire [3:0]        m_axis_tkeep,
    output wire              m_axis_tvalid,
    input  wire              m_axis_tready,
    output wire              m_axis_tlast
);
    wire        enable, soft_reset;
    wire [9:0]  cfg_width, cfg_height;
    wire [6:0]  cfg_filters;
    wire [7:0]  cfg_pool_w, cfg_pool_h, cfg_stride_w, cfg_stride_h;
    wire [15:0] cfg_frames;
    wire [MAX_FILTERS*DATA_W-1:0] cfg_vref;
    wire        st_busy, st_discarding, ev_err_early, ev_err_late, ev_err_config, ev_frame_done;

    maxpool_thresh_regs #(
        .DATA_W(DATA_W), .MAX_FILTERS(MAX_FILTERS), .ACC_DEPTH(ACC_DEPTH), .ADDR_W(12)
    ) u_regs (
        .clk(aclk), .rst_n(aresetn),
        .s_axi_awaddr(s_axi_ctrl_awaddr), .s_axi_awprot(s_axi_ctrl_awprot),
        .s_axi_awvalid(s_axi_ctrl_awvalid), .s_axi_awready(s_axi_ctrl_awready),
        .s_axi_wdata(s_axi_ctrl_wdata), .s_axi_wstrb(s_axi_ctrl_wstrb),
        .s_axi_wvalid(s_axi_ctrl_wvalid), .s_axi_wready(s_axi_ctrl_wready),
        .s_axi_bresp(s_axi_ctrl_bresp), .s_axi_bvalid(s_axi_ctrl_bvalid),
        .s_axi_bready(s_axi_ctrl_bready),
        .s_axi_araddr(s_axi_ctrl_araddr), .s_axi_arprot(s_axi_ctrl_arprot),
        .s_axi_arvalid(s_axi_ctrl_arvalid), .s_axi_arready(s_axi_ctrl_arready),
        .s_axi_rdata(s_axi_ctrl_rdata), .s_axi_rresp(s_axi_ctrl_rresp),
        .s_axi_rvalid(s_axi_ctrl_rvalid), .s_axi_rready(s_axi_ctrl_rready),
        .enable(enable), .soft_reset(soft_reset),
        .cfg_width(cfg_width), .cfg_height(cfg_height), .cfg_filters(cfg_filters),
        .cfg_pool_w(cfg_pool_w), .cfg_pool_h(cfg_pool_h),
        .cfg_stride_w(cfg_stride_w), .cfg_stride_h(cfg_stride_h),
        .cfg_frames(cfg_frames), .cfg_vref(cfg_vref),
        .st_busy(st_busy), .st_discarding(st_discarding),
        .ev_err_early(ev_err_early), .ev_err_late(ev_err_late),
        .ev_err_config(ev_err_config), .ev_frame_done(ev_frame_done)
    );

    maxpool_thresh_core #(
        .DATA_W(DATA_W), .MAX_FILTERS(MAX_FILTERS), .ACC_DEPTH(ACC_DEPTH),
        .ACC_AW(ACC_AW), .FIFO_AW(FIFO_AW)
    ) u_core (
        .clk(aclk), .rst_n(aresetn), .enable(enable), .soft_reset(soft_reset),
        .cfg_width(cfg_width), .cfg_height(cfg_height), .cfg_filters(cfg_filters),
        .cfg_pool_w(cfg_pool_w), .cfg_pool_h(cfg_pool_h),
        .cfg_stride_w(cfg_stride_w), .cfg_stride_h(cfg_stride_h),
        .cfg_frames(cfg_frames), .cfg_vref(cfg_vref),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid),
        .s_axis_tready(s_axis_tready), .s_axis_tlast(s_axis_tlast),
        .m_axis_tdata(m_axis_tdata), .m_axis_tkeep(m_axis_tkeep),
        .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .m_axis_tlast(m_axis_tlast),
        .st_busy(st_busy), .st_discarding(st_discarding),
        .ev_err_early(ev_err_early), .ev_err_late(ev_err_late),
        .ev_err_config(ev_err_config), .ev_frame_done(ev_frame_done)
    );
endmodule

`default_nettype wire
