/* A plain MPI program for the virtual cluster tests (tests/vcluster).
 *
 * Every rank finds out where it runs: its network namespace (the inode of
 * /proc/self/ns/net), its 198.18.0.0/15 address and the namespace name the
 * vcluster agent exported (VCLUSTER_HOST). Rank 0 gathers them, checks
 * that no two ranks share a namespace or an address, and a message crosses
 * from rank 0 to every other rank and back.
 *
 *   hello_mpi [--expect-env NAME=VALUE]... [--expect-preload] [--expect-link]
 *             [--max-rate BITS_PER_SECOND] [--distinct-hosts N]
 *
 * --expect-env checks on every rank that NAME has VALUE in the environment;
 * --expect-preload checks that the marker library (this file built with
 * -DHELLO_PRELOAD_MARKER, see below) was really preloaded into the rank;
 * --expect-link checks that rank 0's messages left through its network device
 * (its transmit counter grew by at least the bytes sent), i.e. the MPI did not
 * take a shared-memory shortcut between the hosts; --max-rate checks that the
 * 1 MiB round trips were not faster than that many bits per second (each
 * direction), i.e. the links are really shaped; --distinct-hosts N expects the
 * ranks on exactly N different namespaces and addresses (default: one each, so
 * no two ranks may share a host).
 * Exit status 0 when every check passed, 1 otherwise.
 *
 * Built with -DHELLO_PRELOAD_MARKER this file is instead a tiny shared library
 * whose constructor records that it was loaded (used through LD_PRELOAD).
 *
 * Built with -DHELLO_UCX_FINALIZE_FIX it is a shared library for MPICH's ranks
 * (through LD_PRELOAD) that bounds the flush MPICH 4.0 does in MPI_Finalize
 * (ucp_disconnect_nb): with UCX over TCP that flush waits for an
 * acknowledgement from a peer that may already sit in the PMI barrier of its
 * own MPI_Finalize, and both wait forever (docs/vcluster.md). A disconnect
 * still in progress after 2 s counts as complete: the data was handed to TCP.
 */
#if defined(HELLO_UCX_FINALIZE_FIX)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>
#include <ucp/api/ucp.h>

#define FIX_MAX_REQUESTS 4096
#define FIX_GRACE_SECONDS 2.0
static void* fix_requests[FIX_MAX_REQUESTS];
static double fix_started[FIX_MAX_REQUESTS];
static int fix_count;
static pthread_mutex_t fix_lock = PTHREAD_MUTEX_INITIALIZER;

static double fix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

ucs_status_ptr_t ucp_disconnect_nb(ucp_ep_h ep) {
  ucs_status_ptr_t r = ucp_ep_close_nb(ep, UCP_EP_CLOSE_MODE_FLUSH);
  if (r != NULL && !UCS_PTR_IS_ERR(r)) {
    pthread_mutex_lock(&fix_lock);
    if (fix_count < FIX_MAX_REQUESTS) {
      fix_requests[fix_count] = r;
      fix_started[fix_count++] = fix_now();
    }
    pthread_mutex_unlock(&fix_lock);
  }
  return r;
}

ucs_status_t ucp_request_check_status(void* request) {
  static ucs_status_t (*real)(void*);
  if (!real) real = (ucs_status_t(*)(void*))dlsym(RTLD_NEXT, "ucp_request_check_status");
  ucs_status_t s = real(request);
  if (s != UCS_INPROGRESS) return s;
  pthread_mutex_lock(&fix_lock);
  for (int i = 0; i < fix_count; ++i)
    if (fix_requests[i] == request && fix_now() - fix_started[i] > FIX_GRACE_SECONDS) s = UCS_OK;
  pthread_mutex_unlock(&fix_lock);
  return s;
}

int ucp_request_is_completed(void* request) { return ucp_request_check_status(request) != UCS_INPROGRESS; }

#elif defined(HELLO_PRELOAD_MARKER)
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* Records the pid of the process it was loaded into (children inherit the
 * variable, so the rank compares it with its own pid). */
__attribute__((constructor)) static void hello_marker_loaded(void) {
  char pid[32];
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  setenv("HELLO_PRELOAD_MARKER_PID", pid, 1);
}
#else
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <unistd.h>
#include <mpi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NAME_LEN 64
#define MAX_EXPECT 16

struct where {
  unsigned long long netns;
  char ip[NAME_LEN];
  char host[NAME_LEN];
};

/* The first IPv4 address of this process's namespace inside 198.18.0.0/15 and
 * its device's name (`dev` may be NULL). */
static void my_address(char* out, size_t len, char* dev, size_t dev_len) {
  struct ifaddrs* ifs = NULL;
  snprintf(out, len, "none");
  if (dev) snprintf(dev, dev_len, "none");
  if (getifaddrs(&ifs) != 0) return;
  for (struct ifaddrs* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    const struct sockaddr_in* a = (const struct sockaddr_in*)i->ifa_addr;
    unsigned long ip = ntohl(a->sin_addr.s_addr);
    if ((ip & 0xfffe0000UL) == 0xc6120000UL) { /* 198.18.0.0/15 */
      inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)len);
      if (dev) snprintf(dev, dev_len, "%s", i->ifa_name);
      break;
    }
  }
  freeifaddrs(ifs);
}

/* Bytes transmitted so far by device `dev` of this namespace (0 when unknown). */
static unsigned long long tx_bytes(const char* dev) {
  struct ifaddrs* ifs = NULL;
  unsigned long long n = 0;
  if (getifaddrs(&ifs) != 0) return 0;
  for (struct ifaddrs* i = ifs; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_PACKET && i->ifa_data && strcmp(i->ifa_name, dev) == 0)
      n = ((const struct rtnl_link_stats*)i->ifa_data)->tx_bytes;
  freeifaddrs(ifs);
  return n;
}

int main(int argc, char** argv) {
  const char* expect[MAX_EXPECT];
  int nexpect = 0, expect_preload = 0, expect_link = 0;
  double max_rate = 0;
  int distinct_hosts = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--expect-env") == 0 && i + 1 < argc && nexpect < MAX_EXPECT)
      expect[nexpect++] = argv[++i];
    else if (strcmp(argv[i], "--expect-preload") == 0)
      expect_preload = 1;
    else if (strcmp(argv[i], "--expect-link") == 0)
      expect_link = 1;
    else if (strcmp(argv[i], "--max-rate") == 0 && i + 1 < argc)
      max_rate = atof(argv[++i]);
    else if (strcmp(argv[i], "--distinct-hosts") == 0 && i + 1 < argc)
      distinct_hosts = atoi(argv[++i]);
    else {
      fprintf(stderr, "hello_mpi: unknown argument %s\n", argv[i]);
      return 2;
    }
  }

  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  struct where me;
  memset(&me, 0, sizeof me);
  struct stat st;
  if (stat("/proc/self/ns/net", &st) == 0) me.netns = (unsigned long long)st.st_ino;
  char dev[IF_NAMESIZE + 1];
  my_address(me.ip, sizeof me.ip, dev, sizeof dev);
  const char* h = getenv("VCLUSTER_HOST");
  snprintf(me.host, sizeof me.host, "%s", h ? h : "unknown");

  int bad = 0;
  for (int i = 0; i < nexpect; ++i) {
    const char* eq = strchr(expect[i], '=');
    if (!eq) continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - expect[i]), expect[i]);
    const char* v = getenv(name);
    if (!v || strcmp(v, eq + 1) != 0) {
      fprintf(stderr, "hello_mpi: rank %d: %s is %s%s%s, expected %s\n", rank, name, v ? "\"" : "",
              v ? v : "unset", v ? "\"" : "", eq + 1);
      bad = 1;
    }
  }
  const char* marker = getenv("HELLO_PRELOAD_MARKER_PID");
  if (expect_preload && (!marker || atol(marker) != (long)getpid())) {
    fprintf(stderr, "hello_mpi: rank %d: the LD_PRELOAD marker library is not loaded (LD_PRELOAD=%s)\n", rank,
            getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "unset");
    bad = 1;
  }

  printf("hello from rank %d of %d: host %s, address %s, netns %llu\n", rank, size, me.host, me.ip, me.netns);
  fflush(stdout);

  struct where* all = rank == 0 ? calloc((size_t)size, sizeof *all) : NULL;
  MPI_Gather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    int ns_count = 0, ip_count = 0;
    for (int i = 0; i < size; ++i) {
      int new_ns = 1, new_ip = 1;
      for (int j = 0; j < i; ++j) {
        if (all[i].netns == all[j].netns) new_ns = 0;
        if (strcmp(all[i].ip, all[j].ip) == 0) new_ip = 0;
      }
      ns_count += new_ns;
      ip_count += new_ip;
    }
    int want = distinct_hosts > 0 ? distinct_hosts : size;
    printf("%d ranks on %d network namespaces with %d addresses\n", size, ns_count, ip_count);
    if (ns_count != want || ip_count != want) {
      fprintf(stderr, "hello_mpi: expected the ranks on %d different namespaces and addresses\n", want);
      bad = 1;
    }
    for (int i = 0; i < size; ++i)
      if (strcmp(all[i].ip, "none") == 0) {
        fprintf(stderr, "hello_mpi: rank %d has no 198.18.0.0/15 address\n", i);
        bad = 1;
      }
    free(all);
  }

  /* A message crosses: rank 0 sends 1 MiB to every other rank, which sends it
   * back (after one untimed round trip that sets up the connections). */
  enum { N = 1 << 18 };
  int* buf = malloc(N * sizeof *buf);
  for (int peer = 1; peer < size; ++peer) {
    memset(buf, 0, N * sizeof *buf);
    if (rank == 0) {
      MPI_Send(buf, N, MPI_INT, peer, 5, MPI_COMM_WORLD);
      MPI_Recv(buf, N, MPI_INT, peer, 6, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (rank == peer) {
      MPI_Recv(buf, N, MPI_INT, 0, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf, N, MPI_INT, 0, 6, MPI_COMM_WORLD);
    }
  }
  unsigned long long tx_before = rank == 0 ? tx_bytes(dev) : 0;
  for (int peer = 1; peer < size; ++peer) {
    if (rank == 0) {
      for (int i = 0; i < N; ++i) buf[i] = i ^ peer;
      double t0 = MPI_Wtime();
      MPI_Send(buf, N, MPI_INT, peer, 7, MPI_COMM_WORLD);
      memset(buf, 0, N * sizeof *buf);
      MPI_Recv(buf, N, MPI_INT, peer, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      double dt = MPI_Wtime() - t0;
      /* The same bytes crossed twice, one link direction after the other. */
      double rate = 2.0 * N * sizeof(int) * 8 / dt;
      printf("round trip of %zu bytes with rank %d: %.2f ms, %.3f Gbit/s each way\n", N * sizeof(int), peer,
             dt * 1e3, rate / 1e9);
      if (max_rate > 0 && rate > max_rate) {
        fprintf(stderr, "hello_mpi: the round trip with rank %d ran at %.3f Gbit/s, above --max-rate %.3f Gbit/s: "
                "the link is not shaped?\n", peer, rate / 1e9, max_rate / 1e9);
        bad = 1;
      }
      for (int i = 0; i < N; ++i)
        if (buf[i] != (i ^ peer) + 1) {
          fprintf(stderr, "hello_mpi: wrong data back from rank %d at %d\n", peer, i);
          bad = 1;
          break;
        }
      if (!bad) printf("message crossed: rank 0 (%s) <-> rank %d\n", me.ip, peer);
    } else if (rank == peer) {
      MPI_Recv(buf, N, MPI_INT, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      for (int i = 0; i < N; ++i) buf[i] += 1;
      MPI_Send(buf, N, MPI_INT, 0, 8, MPI_COMM_WORLD);
    }
  }
  free(buf);
  if (rank == 0 && size > 1) {
    unsigned long long sent = tx_bytes(dev) - tx_before, payload = (unsigned long long)(size - 1) * N * sizeof(int);
    printf("rank 0 sent %llu bytes through %s for %llu bytes of messages\n", sent, dev, payload);
    if (expect_link && sent < payload) {
      fprintf(stderr, "hello_mpi: the messages did not go through %s (only %llu of %llu bytes): shared memory?\n",
              dev, sent, payload);
      bad = 1;
    }
  }

  /* Every pair of ranks exchanges a message (so every connection is made before
   * MPI_Finalize: MPICH 4.0 with UCX over TCP often hangs in MPI_Finalize when
   * some pairs never talked, see docs/vcluster.md). */
  int* sendv = malloc((size_t)size * sizeof *sendv);
  int* recvv = malloc((size_t)size * sizeof *recvv);
  for (int i = 0; i < size; ++i) sendv[i] = rank * 1000 + i;
  MPI_Alltoall(sendv, 1, MPI_INT, recvv, 1, MPI_INT, MPI_COMM_WORLD);
  for (int i = 0; i < size; ++i)
    if (recvv[i] != i * 1000 + rank) {
      fprintf(stderr, "hello_mpi: rank %d: wrong value from rank %d in the all-to-all\n", rank, i);
      bad = 1;
    }
  free(sendv);
  free(recvv);

  int any_bad = 0;
  MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0) {
    if (any_bad)
      printf("hello_mpi: FAILED\n");
    else
      printf("hello_mpi: OK (%d ranks)\n", size);
  }
  MPI_Finalize();
  return any_bad ? 1 : 0;
}
#endif
