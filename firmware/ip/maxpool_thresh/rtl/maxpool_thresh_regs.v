// AXI4-Lite register bank of maxpool_thresh.
// Offsets (bytes) are the same as drivers/overlay/regmap.py and scripts/package_ip.tcl:
//   0x00 CTRL        bit0 ENABLE, bit1 SOFT_RESET (self-clearing)
//   0x04 STATUS      bit0 BUSY, bit1 DISCARDING (RO); bit8 ERR_EARLY_TLAST, bit9 ERR_LATE_TLAST,
//                    bit10 ERR_CONFIG (sticky, write 1 to clear)
//   0x08 WIDTH  0x0C HEIGHT  0x10 NUM_FILTERS  0x14 POOL_W  0x18 POOL_H
//   0x1C STRIDE_W  0x20 STRIDE_H  0x24 FRAMES (frames per TLAST packet)
//   0x28 FRAME_COUNT (RO)  0x2C ERROR_COUNT (RO)  0x30 VERSION (RO)  0x34 CAPS (RO)
//   0x100 + 4*f  VREF[f], signed DATA_W bits, sign-extended on read
`timescale 1ns / 1ps
`default_nettype none

module maxpool_thresh_regs #(
    parameter integer DATA_W      = 16,
    parameter integer MAX_FILTERS = 64,
    parameter integer ACC_DEPTH   = 4096,
    parameter integer ADDR_W      = 12
) (
    input  wire                        clk,
    input  wire                        rst_n,
    // AXI4-Lite slave
    input  wire [ADDR_W-1:0]           s_axi_awaddr,
    input  wire [2:0]                  s_axi_awprot,
    input  wire                        s_axi_awvalid,
    output reg                         s_axi_awready,
    input  wire [31:0]                 s_axi_wdata,
    input  wire [3:0]                  s_axi_wstrb,
    input  wire                        s_axi_wvalid,
    output reg                         s_axi_wready,
    output wire [1:0]                  s_axi_bresp,
    output reg                         s_axi_bvalid,
    input  wire                        s_axi_bready,
    input  wire [ADDR_W-1:0]           s_axi_araddr,
    input  wire [2:0]                  s_axi_arprot,
    input  wire                        s_axi_arvalid,
    output reg                         s_axi_arready,
    output reg  [31:0]                 s_axi_rdata,
    output wire [1:0]                  s_axi_rresp,
    output reg                         s_axi_rvalid,
    input  wire                        s_axi_rready,
    // to the core
    output reg                         enable,
    output reg                         soft_reset,
    output reg  [9:0]                  cfg_width,
    output reg  [9:0]                  cfg_height,
    output reg  [6:0]                  cfg_filters,
    output reg  [7:0]                  cfg_pool_w,
    output reg  [7:0]                  cfg_pool_h,
    output reg  [7:0]                  cfg_stride_w,
    output reg  [7:0]                  cfg_stride_h,
    output reg  [15:0]                 cfg_frames,
    output wire [MAX_FILTERS*DATA_W-1:0] cfg_vref,
    // from the core
    input  wire                        st_busy,
    input  wire                        st_discarding,
    input  wire                        ev_err_early,
    input  wire                        ev_err_late,
    input  wire                        ev_err_config,
    input  wire                        ev_frame_done
);
    localparam [31:0] VERSION_VALUE = 32'h0001_0000;
    localparam [31:0] CAPS_VALUE = ((ACC_DEPTH / 16) << 16) | (DATA_W << 8) | MAX_FILTERS;

    reg [DATA_W-1:0] vref [0:MAX_FILTERS-1];
    reg              err_early, err_late, err_config;
    reg [31:0]       frame_count, error_count;

    genvar gi;
    generate
        for (gi = 0; gi < MAX_FILTERS; gi = gi + 1) begin : g_vref
            assign cfg_vref[gi*DATA_W +: DATA_W] = vref[gi];
        end
    endgenerate

    assign s_axi_bresp = 2'b00;
    assign s_axi_rresp = 2'b00;

    function [31:0] merge;  // apply byte strobes
        input [31:0] old;
        input [31:0] data;
        input [3:0]  strb;
        integer b;
        begin
            merge = old;
            for (b = 0; b < 4; b = b + 1)
                if (strb[b]) merge[8*b +: 8] = data[8*b +: 8];
        end
    endfunction

    wire        do_write = s_axi_awvalid && s_axi_wvalid && !s_axi_bvalid && !s_axi_awready;
    wire [ADDR_W-1:0] waddr = s_axi_awaddr;
    wire        wvref = (waddr >= 12'h100) && (waddr < 12'h100 + 4*MAX_FILTERS);
    wire [5:0]  widx  = waddr[7:2];
    wire [31:0] status_word = {21'd0, err_config, err_late, err_early, 6'd0, st_discarding, st_busy};

    integer i;
    always @(posedge clk) begin
        if (!rst_n) begin
            s_axi_awready <= 1'b0;
            s_axi_wready  <= 1'b0;
            s_axi_bvalid  <= 1'b0;
            enable        <= 1'b0;
            soft_reset    <= 1'b0;
            cfg_width     <= 10'd1;
            cfg_height    <= 10'd1;
            cfg_filters   <= 7'd1;
            cfg_pool_w    <= 8'd1;
            cfg_pool_h    <= 8'd1;
            cfg_stride_w  <= 8'd1;
            cfg_stride_h  <= 8'd1;
            cfg_frames    <= 16'd1;
            err_early     <= 1'b0;
            err_late      <= 1'b0;
            err_config    <= 1'b0;
            frame_count   <= 32'd0;
            error_count   <= 32'd0;
            for (i = 0; i < MAX_FILTERS; i = i + 1) vref[i] <= {DATA_W{1'b0}};
        end else begin
            soft_reset    <= 1'b0;
            s_axi_awready <= 1'b0;
            s_axi_wready  <= 1'b0;
            if (s_axi_bvalid && s_axi_bready) s_axi_bvalid <= 1'b0;

            // events from the core (a write-1-to-clear in the same cycle loses to a new event)
            if (ev_frame_done) frame_count <= frame_count + 32'd1;
            if (ev_err_early || ev_err_late || ev_err_config) error_count <= error_count + 32'd1;

            if (do_write) begin
                s_axi_awready <= 1'b1;
                s_axi_wready  <= 1'b1;
                s_axi_bvalid  <= 1'b1;
                if (wvref) begin
                    vref[widx] <= merge({{(32-DATA_W){vref[widx][DATA_W-1]}}, vref[widx]},
                                        s_axi_wdata, s_axi_wstrb);
                end else begin
                    case (waddr)
                        12'h000: begin
                            enable     <= merge({31'd0, enable}, s_axi_wdata, s_axi_wstrb) & 1'b1;
                            soft_reset <= s_axi_wstrb[0] & s_axi_wdata[1];
                        end
                        12'h004: if (s_axi_wstrb[1]) begin
                            if (s_axi_wdata[8])  err_early  <= 1'b0;
                            if (s_axi_wdata[9])  err_late   <= 1'b0;
                            if (s_axi_wdata[10]) err_config <= 1'b0;
                        end
                        12'h008: cfg_width    <= merge({22'd0, cfg_width},    s_axi_wdata, s_axi_wstrb);
                        12'h00C: cfg_height   <= merge({22'd0, cfg_height},   s_axi_wdata, s_axi_wstrb);
                        12'h010: cfg_filters  <= merge({25'd0, cfg_filters},  s_axi_wdata, s_axi_wstrb);
                        12'h014: cfg_pool_w   <= merge({24'd0, cfg_pool_w},   s_axi_wdata, s_axi_wstrb);
                        12'h018: cfg_pool_h   <= merge({24'd0, cfg_pool_h},   s_axi_wdata, s_axi_wstrb);
                        12'h01C: cfg_stride_w <= merge({24'd0, cfg_stride_w}, s_axi_wdata, s_axi_wstrb);
                        12'h020: cfg_stride_h <= merge({24'd0, cfg_stride_h}, s_axi_wdata, s_axi_wstrb);
                        12'h024: cfg_frames   <= merge({16'd0, cfg_frames},   s_axi_wdata, s_axi_wstrb);
                        default: ;
                    endcase
                end
            end
            // sticky error bits: set after the clear so that an event is never lost
            if (ev_err_early)  err_early  <= 1'b1;
            if (ev_err_late)   err_late   <= 1'b1;
            if (ev_err_config) err_config <= 1'b1;
        end
    end

    // read channel
    reg [31:0] rmux;
    wire [ADDR_W-1:0] raddr = s_axi_araddr;
    wire        rvref = (raddr >= 12'h100) && (raddr < 12'h100 + 4*MAX_FILTERS);
    wire [5:0]  ridx  = raddr[7:2];
    always @(*) begin
        rmux = 32'd0;
        if (rvref) begin
            rmux = {{(32-DATA_W){vref[ridx][DATA_W-1]}}, vref[ridx]};
        end else begin
            case (raddr)
                12'h000: rmux = {31'd0, enable};
                12'h004: rmux = status_word;
                12'h008: rmux = {22'd0, cfg_width};
                12'h00C: rmux = {22'd0, cfg_height};
                12'h010: rmux = {25'd0, cfg_filters};
                12'h014: rmux = {24'd0, cfg_pool_w};
                12'h018: rmux = {24'd0, cfg_pool_h};
                12'h01C: rmux = {24'd0, cfg_stride_w};
                12'h020: rmux = {24'd0, cfg_stride_h};
                12'h024: rmux = {16'd0, cfg_frames};
                12'h028: rmux = frame_count;
                12'h02C: rmux = error_count;
                12'h030: rmux = VERSION_VALUE;
                12'h034: rmux = CAPS_VALUE;
                default: rmux = 32'd0;
            endcase
        end
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            s_axi_arready <= 1'b0;
            s_axi_rvalid  <= 1'b0;
            s_axi_rdata   <= 32'd0;
        end else begin
            s_axi_arready <= 1'b0;
            if (s_axi_rvalid && s_axi_rready) s_axi_rvalid <= 1'b0;
            if (s_axi_arvalid && !s_axi_rvalid && !s_axi_arready) begin
                s_axi_arready <= 1'b1;
                s_axi_rvalid  <= 1'b1;
                s_axi_rdata   <= rmux;
            end
        end
    end
endmodule

`default_nettype wire
