/* The machine's floor for a latency figure: a 64-byte TCP round trip over
 * loopback between two processes, one pinned per CPU, paced at 4k/s like
 * the p99 scenario (each side sleeps between messages, as a broker does).
 * No broker can deliver pub -> broker -> sub (two one-way hops) faster
 * than this round trip.
 *   pingpong server PORT          (echoes)
 *   pingpong client PORT COUNT    (prints p50/p90/p99/p999 in µs, as JSON)
 */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: pingpong server PORT | client PORT COUNT\n");
    return 2;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int one = 1;
  char buf[64] = {0};
  if (argv[1][0] == 's') {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (void *)&addr, sizeof addr) || listen(l, 1)) return perror("listen"), 1;
    int c = accept(l, 0, 0);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0 || write(c, buf, n) != n) return 0;
    }
  }
  int count = argc > 3 ? atoi(argv[3]) : 20000;
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c, (void *)&addr, sizeof addr)) return perror("connect"), 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  long *rtt = malloc(sizeof(long) * count);
  for (int i = 0; i < count; i++) {
    long start = now_ns();
    if (write(c, buf, sizeof buf) != sizeof buf) return perror("write"), 1;
    for (size_t got = 0; got < sizeof buf;) {
      ssize_t n = read(c, buf + got, sizeof buf - got);
      if (n <= 0) return perror("read"), 1;
      got += n;
    }
    rtt[i] = now_ns() - start;
    while (now_ns() < start + 250000) usleep(50);
  }
  qsort(rtt, count, sizeof(long), by_value);
  printf("{\"round_trips\":%d,\"rtt_us\":{\"p50\":%ld,\"p90\":%ld,\"p99\":%ld,\"p999\":%ld}}\n", count,
         rtt[count / 2] / 1000, rtt[count * 9 / 10] / 1000, rtt[count * 99 / 100] / 1000,
         rtt[count * 999 / 1000] / 1000);
  return 0;
}
