/*
 * proctree.c: see proctree.h.  One pass over /proc reads each process's
 * parent and CPU times into a table; descendants are then marked by
 * repeated passes over the table (a child is marked once its parent is),
 * which needs no ordering of pids.  The table lives on the heap for the
 * duration of one call only.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/proctree.h"

struct pt_proc {
	pid_t pid, ppid;
	unsigned long long ticks;      /* utime + stime + cutime + cstime */
	int below;                     /* 1: a descendant of the root */
};

struct pt_table {
	struct pt_proc *p;
	size_t n, cap;
};

/* Parse /proc/<pid>/stat: fields 4 (ppid) and 14-17 (CPU times). */
static int read_stat(pid_t pid, struct pt_proc *out)
{
	char path[64], text[1024], *p;
	unsigned long long ut, st, cut, cst;
	long ppid;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = 0;
	/* The command name may hold spaces and parentheses: skip to the last ')'. */
	if (!(p = strrchr(text, ')')) ||
	    sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &ppid, &ut, &st, &cut,
		   &cst) != 5)
		return -1;
	out->pid = pid;
	out->ppid = (pid_t)ppid;
	out->ticks = ut + st + cut + cst;
	out->below = 0;
	return 0;
}

static int table_read(struct pt_table *t)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	memset(t, 0, sizeof(*t));
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 256;
			struct pt_proc *np = realloc(t->p, cap * sizeof(*np));
			if (!np)
				break;
			t->p = np;
			t->cap = cap;
		}
		if (read_stat((pid_t)pid, &t->p[t->n]) == 0)
			t->n++;
	}
	closedir(d);
	return 0;
}

static int marked(const struct pt_table *t, pid_t pid, pid_t root)
{
	size_t i;

	if (pid == root)
		return 1;
	for (i = 0; i < t->n; i++)
		if (t->p[i].pid == pid)
			return t->p[i].below;
	return 0;
}

static void mark_below(struct pt_table *t, pid_t root)
{
	int changed = 1;
	size_t i;

	while (changed) {
		changed = 0;
		for (i = 0; i < t->n; i++) {
			if (t->p[i].below || t->p[i].pid == root || !marked(t, t->p[i].ppid, root))
				continue;
			t->p[i].below = 1;
			changed = 1;
		}
	}
}

unsigned long long proctree_cpu_ticks(pid_t root)
{
	struct pt_table t;
	unsigned long long sum = 0;
	size_t i;

	if (table_read(&t) != 0)
		return 0;
	mark_below(&t, root);
	for (i = 0; i < t.n; i++)
		if (t.p[i].below)
			sum += t.p[i].ticks;
	free(t.p);
	return sum;
}

int proctree_kill(pid_t root, int sig)
{
	struct pt_table t;
	int n = 0;
	size_t i;

	if (table_read(&t) != 0)
		return 0;
	mark_below(&t, root);
	for (i = 0; i < t.n; i++)
		if (t.p[i].below && kill(t.p[i].pid, sig) == 0)
			n++;
	free(t.p);
	return n;
}
