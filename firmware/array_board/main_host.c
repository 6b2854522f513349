/* Host build of the array board: serves the protocol on a pseudo-terminal.
 *
 * Prints "PTY <slave path>" on stdout, then serves until SIGINT/SIGTERM, until stdin reaches
 * end of file (the parent went away), or until --timeout seconds have passed.
 */
#define _XOPEN_SOURCE 600
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static board_t board;
static char line[MAX_LINE + 1];
static char reply[MAX_LINE + 64];

int main(int argc, char **argv)
{
    double timeout = 600.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--timeout SECONDS]\n", argv[0]);
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        perror("posix_openpt");
        return 1;
    }
    const char *slave_name = ptsname(master);
    /* Hold the slave open in raw mode, so that the line discipline never echoes or edits, and
     * the master does not see EIO between clients. */
    int slave = open(slave_name, O_RDWR | O_NOCTTY);
    if (slave < 0) {
        perror("open slave");
        return 1;
    }
    struct termios tio;
    tcgetattr(slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);

    printf("PTY %s\n", slave_name);
    fflush(stdout);

    board_init(&board);
    size_t len = 0;
    int overflow = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!stop_requested) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - t0.tv_nsec) > timeout)
            break;
        struct pollfd fds[2] = {{master, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        int r = poll(fds, 2, 100);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            char tmp[64];
            if (read(STDIN_FILENO, tmp, sizeof tmp) <= 0)
                break; /* parent closed our stdin */
        }
        if (!(fds[0].revents & POLLIN))
            continue;
        char buf[4096];
        ssize_t n = read(master, buf, sizeof buf);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (c == '\n') {
                size_t rn = overflow ? board_line_too_long(reply, sizeof reply)
                                     : board_handle_line(&board, line, len, reply, sizeof reply);
                if (write_all(master, reply, rn) != 0)
                    stop_requested = 1;
                len = 0;
                overflow = 0;
            } else if (len < MAX_LINE) {
                line[len++] = c;
            } else {
                overflow = 1;
            }
        }
    }
    close(slave);
    close(master);
    return 0;
}
