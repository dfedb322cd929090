/*
 * relay.c: the sandbox's port relays (see sandbox.h).
 *
 * The box's network namespace holds only loopback; ccr's proxies listen
 * on the host's.  The box's first process listens on 127.0.0.1:<port>
 * inside and hands the listening sockets over; here one thread of ccr
 * accepts on them (a socket keeps the namespace it was made in) and joins
 * each connection to 127.0.0.1:<port> outside, copying both ways until
 * both sides have finished.  One poll loop serves every connection; each
 * direction holds at most one buffer, so a slow side slows only its own
 * connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#define RELAY_BUF 65536
#define RELAY_MAX 256

struct pair {
	int fd[2];                /* 0: the agent's side, 1: the proxy's */
	char buf[2][RELAY_BUF];   /* buf[d]: read from fd[d], owed to fd[!d] */
	size_t len[2], off[2];
	int eof[2];
};

struct sbx_relay {
	pthread_t thread;
	int stop[2];
	int lfd[SBX_MAX_PORTS], port[SBX_MAX_PORTS], n;
	struct pair *pairs[RELAY_MAX];
	int npairs;
};

static void pair_close(struct sbx_relay *r, int i)
{
	struct pair *p = r->pairs[i];

	close(p->fd[0]);
	close(p->fd[1]);
	free(p);
	r->pairs[i] = r->pairs[--r->npairs];
}

static int connect_host(int port)
{
	struct sockaddr_in a;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(s);
		return -1;
	}
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	return s;
}

static void accept_one(struct sbx_relay *r, int k)
{
	struct pair *p;
	int in = accept4(r->lfd[k], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), out;

	if (in < 0)
		return;
	if (r->npairs >= RELAY_MAX || (out = connect_host(r->port[k])) < 0) {
		close(in);
		return;
	}
	if (!(p = calloc(1, sizeof(*p)))) {
		close(in);
		close(out);
		return;
	}
	p->fd[0] = in;
	p->fd[1] = out;
	r->pairs[r->npairs++] = p;
}

/* Move data for one pair after poll said `ev` for each side; 0 to keep
 * the pair, -1 to close it. */
static int pump(struct pair *p, const short ev[2])
{
	int d;

	for (d = 0; d < 2; d++) {
		if ((ev[d] & (POLLIN | POLLHUP | POLLERR)) && !p->eof[d] && p->len[d] == 0) {
			ssize_t n = read(p->fd[d], p->buf[d], RELAY_BUF);
			if (n > 0) {
				p->len[d] = (size_t)n;
				p->off[d] = 0;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				p->eof[d] = 1;
				shutdown(p->fd[!d], SHUT_WR);
			}
		}
		if ((ev[!d] & (POLLOUT | POLLERR)) && p->len[d]) {
			ssize_t n = write(p->fd[!d], p->buf[d] + p->off[d], p->len[d]);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -1;
			if (n > 0) {
				p->off[d] += (size_t)n;
				p->len[d] -= (size_t)n;
			}
		}
	}
	return p->eof[0] && p->eof[1] && !p->len[0] && !p->len[1] ? -1 : 0;
}

static short wants(const struct pair *p, int d)
{
	short ev = 0;

	if (!p->eof[d] && p->len[d] == 0)
		ev |= POLLIN;
	if (p->len[!d])
		ev |= POLLOUT;
	return ev;
}

static void *relay_main(void *arg)
{
	struct sbx_relay *r = arg;
	struct pollfd pf[1 + SBX_MAX_PORTS + 2 * RELAY_MAX];

	for (;;) {
		int n = 0, i, k, base;

		pf[n++] = (struct pollfd){ r->stop[0], POLLIN, 0 };
		for (k = 0; k < r->n; k++)
			pf[n++] = (struct pollfd){ r->lfd[k], POLLIN, 0 };
		base = n;
		for (i = 0; i < r->npairs; i++) {
			pf[n++] = (struct pollfd){ r->pairs[i]->fd[0], wants(r->pairs[i], 0), 0 };
			pf[n++] = (struct pollfd){ r->pairs[i]->fd[1], wants(r->pairs[i], 1), 0 };
		}
		if (poll(pf, (nfds_t)n, -1) < 0 && errno != EINTR)
			break;
		if (pf[0].revents)
			break;
		/* Pairs first: accepting may reorder the array. */
		for (i = r->npairs - 1; i >= 0; i--) {
			short ev[2] = { pf[base + 2 * i].revents, pf[base + 2 * i + 1].revents };
			if ((ev[0] || ev[1]) && pump(r->pairs[i], ev) != 0)
				pair_close(r, i);
		}
		for (k = 0; k < r->n; k++)
			if (pf[1 + k].revents & POLLIN)
				accept_one(r, k);
	}
	while (r->npairs)
		pair_close(r, r->npairs - 1);
	return NULL;
}

int sbx_relay_start(struct sbx_relay **out, const int *listen_fds, const int *ports, int n, struct err *e)
{
	struct sbx_relay *r = calloc(1, sizeof(*r));
	int k;

	*out = NULL;
	if (!r)
		return err_set(e, "out of memory");
	if (pipe2(r->stop, O_CLOEXEC) != 0) {
		free(r);
		return err_set(e, "cannot create a pipe: %s", strerror(errno));
	}
	for (k = 0; k < n && k < SBX_MAX_PORTS; k++) {
		r->lfd[k] = listen_fds[k];
		r->port[k] = ports[k];
		fcntl(r->lfd[k], F_SETFL, fcntl(r->lfd[k], F_GETFL) | O_NONBLOCK);
	}
	r->n = k;
	if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
		close(r->stop[0]);
		close(r->stop[1]);
		free(r);
		return err_set(e, "cannot start the sandbox's port relay thread");
	}
	*out = r;
	return 0;
}

void sbx_relay_stop(struct sbx_relay *r)
{
	int k;
	char c = 1;

	if (!r)
		return;
	(void)!write(r->stop[1], &c, 1);
	pthread_join(r->thread, NULL);
	for (k = 0; k < r->n; k++)
		close(r->lfd[k]);
	close(r->stop[0]);
	close(r->stop[1]);
	free(r);
}
