/* streamload: hold N concurrent HTTP streams open and time their events, reading at full speed.
 *
 * Built by bench/streams.py with the machine's gcc at run time (a Python client would be the bottleneck at
 * these rates). One thread, one epoll loop, non-blocking sockets. Each connection sends the same request (with
 * `connection: close`, so the end of a response is the end of the connection), checks for status 200, then
 * counts SSE events (each ends with a blank line, "\n\n") in the body and records:
 *   - TTFB: from writing the request to the first body byte;
 *   - the gap between consecutive events of one stream (one clock read per epoll batch).
 * A stream is complete when the server closes it after exactly EVENTS events; anything else is an error, by kind.
 *
 * usage: streamload HOST PORT REQUEST_FILE STREAMS EVENTS TIMEOUT_S CONNECTS_PER_S
 * prints one JSON object on stdout at the end.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RES_US 10                    /* histogram resolution */
#define HIST_SLOTS (60 * 100000)     /* 10 us slots up to 60 s */

enum state { CONNECTING, HEAD, BODY, DONE };
enum error { E_CONNECT, E_REFUSED, E_STATUS, E_RESET, E_SHORT, E_TIMEOUT, E_KINDS };
/* refused: a 503 (e.g. the gateway's `overloaded`); status: any other status but 200 */
static const char *error_names[E_KINDS] = {"connect", "refused", "status", "reset", "short", "timeout"};

struct conn {
    int fd;
    enum state state;
    int64_t sent_us, last_event_us;
    int events;
    int head_len;         /* bytes of the head seen so far (status check and end-of-head search) */
    int head_match;       /* how much of "\r\n\r\n" the last head bytes matched */
    char status[13];
    int prev_newline;     /* the last body byte was '\n' */
};

static uint32_t *ttfb_hist, *gap_hist;
static uint64_t ttfb_count, gap_count, events_total;
static int64_t ttfb_max, gap_max;
static int errors[E_KINDS], completed, open_now, peak_open;

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void record(uint32_t *hist, uint64_t *count, int64_t *max, int64_t us) {
    int64_t slot = us / RES_US;
    if (slot >= HIST_SLOTS) slot = HIST_SLOTS - 1;
    if (slot < 0) slot = 0;
    hist[slot]++;
    (*count)++;
    if (us > *max) *max = us;
}

static double percentile(const uint32_t *hist, uint64_t count, double q) {
    if (count == 0) return -1;
    uint64_t want = (uint64_t)(q * (double)count), seen = 0;
    if (want >= count) want = count - 1;
    for (int64_t i = 0; i < HIST_SLOTS; i++) {
        seen += hist[i];
        if (seen > want) return (double)(i * RES_US + RES_US / 2);
    }
    return -1;
}

static void finish(struct conn *c, int epfd, int error) {
    if (c->state == DONE) return;
    if (c->state == BODY) open_now--;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = DONE;
    if (error < 0) completed++;
    else errors[error]++;
}

static void body_bytes(struct conn *c, const char *p, ssize_t n, int64_t t) {
    for (ssize_t i = 0; i < n; i++) {
        const char *nl = memchr(p + i, '\n', (size_t)(n - i));
        if (nl == NULL) { c->prev_newline = 0; return; }
        ssize_t at = nl - p;
        if (at > i) c->prev_newline = 0;  /* other bytes came between */
        if (c->prev_newline) {
            if (c->events > 0) record(gap_hist, &gap_count, &gap_max, t - c->last_event_us);
            c->events++;
            events_total++;
            c->last_event_us = t;
            c->prev_newline = 0;
        } else {
            c->prev_newline = 1;
        }
        i = at;
    }
}

static void on_readable(struct conn *c, int epfd, int expected, int64_t t) {
    static char buf[256 * 1024];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n == 0) { finish(c, epfd, c->state == BODY && c->events == expected ? -1 : E_SHORT); return; }
        if (n < 0) {
            if (errno == EAGAIN) return;
            finish(c, epfd, E_RESET);
            return;
        }
        ssize_t i = 0;
        while (c->state == HEAD && i < n) {
            char ch = buf[i++];
            if (c->head_len < 12) c->status[c->head_len] = ch;
            c->head_len++;
            if (c->head_len == 12 && memcmp(c->status, "HTTP/1.1 200", 12) != 0) {
                finish(c, epfd, memcmp(c->status, "HTTP/1.1 503", 12) == 0 ? E_REFUSED : E_STATUS);
                return;
            }
            c->head_match = (ch == (c->head_match % 2 ? '\n' : '\r')) ? c->head_match + 1 : (ch == '\r');
            if (c->head_match == 4) { c->state = BODY; open_now++; if (open_now > peak_open) peak_open = open_now; }
        }
        if (c->state == BODY && i < n) {
            if (c->events == 0 && c->last_event_us == 0) {
                record(ttfb_hist, &ttfb_count, &ttfb_max, t - c->sent_us);
                c->last_event_us = -1;  /* TTFB taken */
            }
            body_bytes(c, buf + i, n - i, t);
        }
    }
}

static int open_conn(struct conn *c, struct sockaddr_in *addr, int epfd) {
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) { close(c->fd); return -1; }
    c->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void on_connected(struct conn *c, int epfd, const char *req, size_t req_len, int64_t t) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || write(c->fd, req, req_len) != (ssize_t)req_len) { finish(c, epfd, E_CONNECT); return; }
    c->sent_us = t;
    c->state = HEAD;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s HOST PORT REQUEST_FILE STREAMS EVENTS TIMEOUT_S CONNECTS_PER_S\n", argv[0]);
        return 2;
    }
    int streams = atoi(argv[4]), expected = atoi(argv[5]);
    double timeout_s = atof(argv[6]), rate = atof(argv[7]);
    static char req[65536];
    FILE *f = fopen(argv[3], "rb");
    if (!f) { perror("request file"); return 2; }
    size_t req_len = fread(req, 1, sizeof req, f);
    fclose(f);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    ttfb_hist = calloc(HIST_SLOTS, sizeof *ttfb_hist);
    gap_hist = calloc(HIST_SLOTS, sizeof *gap_hist);
    struct conn *conns = calloc((size_t)streams, sizeof *conns);
    int epfd = epoll_create1(0);
    struct epoll_event events[1024];
    int64_t start = now_us(), deadline = start + (int64_t)(timeout_s * 1e6);
    int started = 0, finished = 0;

    while (finished < streams) {
        int64_t t = now_us();
        if (t > deadline) break;
        int64_t due = (int64_t)((double)(t - start) * rate / 1e6) + 1;
        while (started < streams && started < due) {
            if (open_conn(&conns[started], &addr, epfd) < 0) { conns[started].state = DONE; errors[E_CONNECT]++; }
            started++;
        }
        int n = epoll_wait(epfd, events, 1024, started < streams ? 1 : 50);
        t = now_us();
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->state == CONNECTING) on_connected(c, epfd, req, req_len, t);
            if (c->state == HEAD || c->state == BODY) on_readable(c, epfd, expected, t);
        }
        finished = completed;
        for (int e = 0; e < E_KINDS; e++) finished += errors[e];
    }
    for (int i = 0; i < started; i++) finish(&conns[i], epfd, E_TIMEOUT);
    errors[E_TIMEOUT] += streams - started;

    printf("{\"streams\": %d, \"events_per_stream\": %d, \"completed\": %d, \"events\": %lu, \"peak_open\": %d, "
           "\"elapsed_s\": %.3f, \"errors\": {",
           streams, expected, completed, (unsigned long)events_total, peak_open, (double)(now_us() - start) / 1e6);
    for (int e = 0; e < E_KINDS; e++) printf("%s\"%s\": %d", e ? ", " : "", error_names[e], errors[e]);
    printf("}, \"ttfb_us\": {\"p50\": %.0f, \"p99\": %.0f, \"max\": %ld, \"count\": %lu}, ",
           percentile(ttfb_hist, ttfb_count, 0.5), percentile(ttfb_hist, ttfb_count, 0.99), (long)ttfb_max,
           (unsigned long)ttfb_count);
    printf("\"gap_us\": {\"p50\": %.0f, \"p99\": %.0f, \"max\": %ld, \"count\": %lu}}\n",
           percentile(gap_hist, gap_count, 0.5), percentile(gap_hist, gap_count, 0.99), (long)gap_max,
           (unsigned long)gap_count);
    return 0;
}
