// Streaming max-pool + V_REF threshold datapath.
//
// Input:  one signed DATA_W-bit MVM value per beat, pixel-major, filter innermost:
//         for each frame, for y, for x, for f. A packet (TLAST on its last beat) holds
//         cfg_frames frames.
// Output: the packed binary feature map, 32-bit words; bit k of a frame (order oy, ox, f) is
//         bit k%32 of word k/32, each frame zero-padded to whole words; TLAST on the last word
//         of the packet.
// One value per clock without backpressure. Configuration (geometry, V_REF) is latched on the
// first beat of every frame; the frame count per packet on the first beat of a packet.
// Pipeline: S0 accepts the beat, computes window flags and issues the running-max memory read;
// S1 merges the running maximum (forwarding the previous write) and compares with V_REF;
// S2 packs bits into words and pushes them into the output FIFO.
// Malformed packets: TLAST before the last value -> the partial word (or a zero word) goes out
// with TLAST, ERR_EARLY_TLAST, and the next beat starts a new packet. No TLAST on the last value
// -> the packet's output ends normally, ERR_LATE_TLAST, input is dropped up to and including
// the next TLAST. Invalid configuration at a frame start -> ERR_CONFIG, the packet is dropped up
// to TLAST (a zero word with TLAST closes the output packet if frames were already sent).
`timescale 1ns / 1ps
`default_nettype none

module maxpool_thresh_core #(
    parameter integer DATA_W      = 16,
    parameter integer MAX_FILTERS = 64,
    parameter integer ACC_DEPTH   = 4096,
    parameter integer ACC_AW      = 12,
    parameter integer FIFO_AW     = 3
) (
    input  wire                          clk,
    input  wire                          rst_n,
    input  wire                          enable,
    input  wire                          soft_reset,
    input  wire [9:0]                    cfg_width,
    input  wire [9:0]                    cfg_height,
    input  wire [6:0]                    cfg_filters,
    input  wire [7:0]                    cfg_pool_w,
    input  wire [7:0]                    cfg_pool_h,
    input  wire [7:0]                    cfg_stride_w,
    input  wire [7:0]                    cfg_stride_h,
    input  wire [15:0]                   cfg_frames,
    input  wire [MAX_FILTERS*DATA_W-1:0] cfg_vref,
    // AXI4-Stream in
    input  wire [DATA_W-1:0]             s_axis_tdata,
    input  wire                          s_axis_tvalid,
    output wire                          s_axis_tready,
    input  wire                          s_axis_tlast,
    // AXI4-Stream out
    output wire [31:0]                   m_axis_tdata,
    output wire [3:0]                    m_axis_tkeep,
    output wire                          m_axis_tvalid,
    input  wire                          m_axis_tready,
    output wire                          m_axis_tlast,
    // status
    output wire                          st_busy,
    output wire                          st_discarding,
    output reg                           ev_err_early,
    output reg                           ev_err_late,
    output reg                           ev_err_config,
    output reg                           ev_frame_done
);
    localparam integer FIFO_DEPTH = 1 << FIFO_AW;

    wire srst = !rst_n || soft_reset;

    // ---------------------------------------------------------------- latched configuration
    reg [9:0]  l_width, l_height;
    reg [6:0]  l_filters;
    reg [7:0]  l_pool_w, l_pool_h, l_stride_w, l_stride_h;
    reg [15:0] l_frames;
    reg [DATA_W-1:0] vref_act [0:MAX_FILTERS-1];

    // ---------------------------------------------------------------- state
    reg        in_packet;      // a packet has started (BUSY)
    reg        discarding;     // dropping beats up to TLAST
    reg [6:0]  f_cnt;
    reg [9:0]  x_cnt, y_cnt;
    reg [7:0]  px, py;          // offset inside the current stride period
    reg [10:0] wsx, wsy;        // start column / row of the current window
    reg [17:0] acc_base;        // ox * num_filters
    reg [15:0] frame_idx;
    wire       frame_start = (f_cnt == 0) && (x_cnt == 0) && (y_cnt == 0);

    // configuration in effect for the beat in S0: the registers on a frame's first beat
    wire [9:0]  c_width    = frame_start ? cfg_width    : l_width;
    wire [9:0]  c_height   = frame_start ? cfg_height   : l_height;
    wire [6:0]  c_filters  = frame_start ? cfg_filters  : l_filters;
    wire [7:0]  c_pool_w   = frame_start ? cfg_pool_w   : l_pool_w;
    wire [7:0]  c_pool_h   = frame_start ? cfg_pool_h   : l_pool_h;
    wire [7:0]  c_stride_w = frame_start ? cfg_stride_w : l_stride_w;
    wire [7:0]  c_stride_h = frame_start ? cfg_stride_h : l_stride_h;
    wire [15:0] c_frames   = in_packet   ? l_frames     : cfg_frames;
    wire [15:0] c_fidx     = in_packet   ? frame_idx    : 16'd0;

    wire cfg_ok = (cfg_width != 0) && (cfg_height != 0) && (cfg_filters != 0) &&
                  (cfg_filters <= MAX_FILTERS) && (cfg_pool_w != 0) && (cfg_pool_h != 0) &&
                  (cfg_stride_w >= cfg_pool_w) && (cfg_stride_h >= cfg_pool_h) &&
                  ({2'b0, cfg_pool_w} <= cfg_width) && ({2'b0, cfg_pool_h} <= cfg_height) &&
                  (cfg_frames != 0);

    // ---------------------------------------------------------------- output FIFO
    reg [32:0]        fifo_mem [0:FIFO_DEPTH-1];   // {last, data}
    reg [FIFO_AW:0]   fifo_count;
    reg [FIFO_AW-1:0] fifo_wp, fifo_rp;
    wire              fifo_push;
    wire [32:0]       fifo_din;
    wire              fifo_pop = m_axis_tvalid && m_axis_tready;
    assign m_axis_tvalid = (fifo_count != 0);
    assign m_axis_tdata  = fifo_mem[fifo_rp][31:0];
    assign m_axis_tlast  = fifo_mem[fifo_rp][32];
    assign m_axis_tkeep  = 4'hF;

    // S1 and S2 may each push one word: keep room for them plus the beat accepted now.
    wire   room = (fifo_count <= FIFO_DEPTH - 3);
    assign s_axis_tready = enable && !srst && (discarding || room);
    wire   accept  = s_axis_tvalid && s_axis_tready;
    wire   process = accept && !discarding;

    assign st_busy       = in_packet;
    assign st_discarding = discarding;

    // ---------------------------------------------------------------- S0: window flags
    wire        last_f  = (f_cnt == c_filters - 7'd1);
    wire        last_x  = (x_cnt == c_width - 10'd1);
    wire        last_y  = (y_cnt == c_height - 10'd1);
    wire        frame_end  = last_f && last_x && last_y;
    wire        packet_end = frame_end && (c_fidx == c_frames - 16'd1);
    wire        in_x    = (px < c_pool_w) && ({1'b0, wsx} + c_pool_w <= {2'b0, c_width});
    wire        in_y    = (py < c_pool_h) && ({1'b0, wsy} + c_pool_h <= {2'b0, c_height});
    wire        inwin   = in_x && in_y;
    wire        first   = (px == 0) && (py == 0);
    wire        lastw   = (px == c_pool_w - 8'd1) && (py == c_pool_h - 8'd1);
    // no further window fits to the right / below: this window holds the frame's last bit
    wire        last_ox = ({1'b0, wsx} + c_stride_w + c_pool_w > {2'b0, c_width});
    wire        last_oy = ({1'b0, wsy} + c_stride_h + c_pool_h > {2'b0, c_height});
    wire        lastbit = inwin && lastw && last_f && last_ox && last_oy;
    wire [17:0] addr_full = acc_base + f_cnt;
    wire        addr_oob  = inwin && (addr_full >= ACC_DEPTH);
    wire [ACC_AW-1:0] addr = addr_full[ACC_AW-1:0];

    wire bad_cfg = process && frame_start && !cfg_ok;
    wire early   = process && !bad_cfg && s_axis_tlast && !packet_end;
    wire late    = process && !bad_cfg && packet_end && !s_axis_tlast;

    // ---------------------------------------------------------------- running-max memory
    reg [DATA_W-1:0] acc_mem [0:ACC_DEPTH-1];
    reg [DATA_W-1:0] acc_rd;

    // S1 registers
    reg              s1_valid, s1_inwin, s1_first, s1_lastw, s1_lastbit, s1_pktlast, s1_abort;
    reg [DATA_W-1:0] s1_data;
    reg [ACC_AW-1:0] s1_addr;
    reg [6:0]        s1_f;
    // last write (forwarding)
    reg              wr_valid;
    reg [ACC_AW-1:0] wr_addr;
    reg [DATA_W-1:0] wr_data;

    wire [DATA_W-1:0] s1_prev = (wr_valid && wr_addr == s1_addr) ? wr_data : acc_rd;
    wire [DATA_W-1:0] s1_max  = (s1_first || $signed(s1_data) > $signed(s1_prev)) ? s1_data : s1_prev;
    wire [DATA_W-1:0] s1_vref = vref_act[s1_f];
    wire              s1_bit  = $signed(s1_max) > $signed(s1_vref);

    // S2 registers
    reg        s2_valid, s2_bitv, s2_bit, s2_lastbit, s2_pktlast, s2_abort;
    reg [31:0] pack_word;
    reg [5:0]  pack_cnt;

    integer i;

    always @(posedge clk) begin
        if (process) acc_rd <= acc_mem[addr];
        if (s1_valid && s1_inwin) acc_mem[s1_addr] <= s1_max;
    end

    always @(posedge clk) begin
        ev_err_early  <= 1'b0;
        ev_err_late   <= 1'b0;
        ev_err_config <= 1'b0;
        ev_frame_done <= 1'b0;
        if (srst) begin
            in_packet  <= 1'b0;
            discarding <= 1'b0;
            f_cnt <= 0; x_cnt <= 0; y_cnt <= 0; px <= 0; py <= 0;
            wsx <= 0; wsy <= 0; acc_base <= 0; frame_idx <= 0;
            s1_valid <= 1'b0;
            wr_valid <= 1'b0;
            if (!rst_n) begin
                l_width <= 10'd1; l_height <= 10'd1; l_filters <= 7'd1;
                l_pool_w <= 8'd1; l_pool_h <= 8'd1; l_stride_w <= 8'd1; l_stride_h <= 8'd1;
                l_frames <= 16'd1;
            end
        end else begin
            // ---- S0
            s1_valid <= 1'b0;
            if (accept && discarding) begin
                if (s_axis_tlast) discarding <= 1'b0;
            end else if (process) begin
                if (frame_start) begin
                    l_width <= cfg_width;   l_height <= cfg_height; l_filters <= cfg_filters;
                    l_pool_w <= cfg_pool_w; l_pool_h <= cfg_pool_h;
                    l_stride_w <= cfg_stride_w; l_stride_h <= cfg_stride_h;
                    for (i = 0; i < MAX_FILTERS; i = i + 1)
                        vref_act[i] <= cfg_vref[i*DATA_W +: DATA_W];
                end
                if (!in_packet) l_frames <= cfg_frames;

                if (bad_cfg) begin
                    ev_err_config <= 1'b1;
                    // close an output packet that already carries frames
                    s1_valid   <= in_packet;
                    s1_inwin   <= 1'b0;
                    s1_first   <= 1'b0;
                    s1_lastw   <= 1'b0;
                    s1_lastbit <= 1'b0;
                    s1_pktlast <= 1'b0;
                    s1_abort   <= 1'b1;
                    in_packet  <= 1'b0;
                    frame_idx  <= 0;
                    discarding <= !s_axis_tlast;
                end else begin
                    s1_valid   <= 1'b1;
                    s1_inwin   <= inwin && !addr_oob;
                    s1_first   <= first;
                    s1_lastw   <= lastw;
                    s1_lastbit <= lastbit;
                    s1_pktlast <= (c_fidx == c_frames - 16'd1);
                    s1_abort   <= early;
                    s1_data    <= s_axis_tdata;
                    s1_addr    <= addr;
                    s1_f       <= f_cnt;
                    if (addr_oob) ev_err_config <= 1'b1;
                    ev_err_early <= early;
                    ev_err_late  <= late;

                    // advance the position
                    if (early) begin
                        f_cnt <= 0; x_cnt <= 0; y_cnt <= 0; px <= 0; py <= 0;
                        wsx <= 0; wsy <= 0; acc_base <= 0;
                        in_packet <= 1'b0;
                        frame_idx <= 0;
                    end else if (!last_f) begin
                        f_cnt <= f_cnt + 7'd1;
                        in_packet <= 1'b1;
                    end else begin
                        f_cnt <= 0;
                        if (!last_x) begin
                            x_cnt <= x_cnt + 10'd1;
                            if (px == c_stride_w - 8'd1) begin
                                px <= 0;
                                wsx <= wsx + c_stride_w;
                                acc_base <= acc_base + c_filters;
                            end else begin
                                px <= px + 8'd1;
                            end
                            in_packet <= 1'b1;
                        end else begin
                            x_cnt <= 0; px <= 0; wsx <= 0; acc_base <= 0;
                            if (!last_y) begin
                                y_cnt <= y_cnt + 10'd1;
                                if (py == c_stride_h - 8'd1) begin
                                    py <= 0;
                                    wsy <= wsy + c_stride_h;
                                end else begin
                                    py <= py + 8'd1;
                                end
                                in_packet <= 1'b1;
                            end else begin
                                // frame end
                                y_cnt <= 0; py <= 0; wsy <= 0;
                                ev_frame_done <= 1'b1;
                                if (packet_end) begin
                                    in_packet <= 1'b0;
                                    frame_idx <= 0;
                                    discarding <= late;
                                end else begin
                                    in_packet <= 1'b1;
                                    frame_idx <= c_fidx + 16'd1;
                                end
                            end
                        end
                    end
                end
            end

            // ---- S1 -> S2: the last write is kept for forwarding
            if (s1_valid && s1_inwin) begin
                wr_valid <= 1'b1;
                wr_addr  <= s1_addr;
                wr_data  <= s1_max;
            end
        end
    end

    // ---------------------------------------------------------------- S1 -> S2, packing, FIFO
    wire [5:0]  cnt_after  = pack_cnt + (s2_bitv ? 6'd1 : 6'd0);
    wire [31:0] word_after = s2_bitv ? (pack_word | ({31'd0, s2_bit} << pack_cnt)) : pack_word;
    assign fifo_push = s2_valid && ((s2_bitv && (cnt_after == 6'd32 || s2_lastbit)) || s2_abort);
    assign fifo_din  = {(s2_bitv && s2_lastbit && s2_pktlast) || s2_abort, word_after};

    always @(posedge clk) begin
        if (srst) begin
            s2_valid   <= 1'b0;
            pack_word  <= 32'd0;
            pack_cnt   <= 6'd0;
            fifo_count <= 0;
            fifo_wp    <= 0;
            fifo_rp    <= 0;
        end else begin
            s2_valid   <= s1_valid;
            s2_bitv    <= s1_valid && s1_inwin && s1_lastw;
            s2_bit     <= s1_bit;
            s2_lastbit <= s1_lastbit;
            s2_pktlast <= s1_pktlast;
            s2_abort   <= s1_abort;
            if (s2_valid) begin
                if (fifo_push) begin
                    pack_word <= 32'd0;
                    pack_cnt  <= 6'd0;
                end else begin
                    pack_word <= word_after;
                    pack_cnt  <= cnt_after;
                end
            end
            if (fifo_push) begin
                fifo_mem[fifo_wp] <= fifo_din;
                fifo_wp <= fifo_wp + 1'b1;
            end
            if (fifo_pop) fifo_rp <= fifo_rp + 1'b1;
            fifo_count <= fifo_count + (fifo_push ? 1'b1 : 1'b0) - (fifo_pop ? 1'b1 : 1'b0);
        end
    end
endmodule

`default_nettype wire
