/*
 * landlock.c: the sandbox's second layer (see sandbox.h).
 *
 * The kernel's Landlock interface is three system calls; their numbers and
 * structures are written out here because the C library's headers predate
 * the newer parts (network ports: ABI 4, scopes: ABI 6).  The rights a
 * ruleset handles are the ones the running kernel knows (by its ABI
 * version), so one binary works from ABI 1 upwards: what a kernel cannot
 * restrict is simply left to the namespaces.
 *
 * Rules, in the process's own view of the file system (the box's view
 * after pivot_root, or the host's at the Landlock-only level):
 *   read + execute   the read-only paths of the spawn (files or trees)
 *   everything       the read-write paths (the workspace, the private tmp)
 *   read + write     the device nodes (null, zero, tty...), /dev/shm, /dev/pts
 *   read             /proc (Landlock itself refuses /proc/<pid>/mem and
 *                    /environ of processes outside the domain: ptrace rules)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#define LL_CREATE_RULESET 444
#define LL_ADD_RULE 445
#define LL_RESTRICT_SELF 446
#define LL_CREATE_RULESET_VERSION 1U
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2

#define FS_EXECUTE (1ULL << 0)
#define FS_WRITE_FILE (1ULL << 1)
#define FS_READ_FILE (1ULL << 2)
#define FS_READ_DIR (1ULL << 3)
#define FS_TRUNCATE (1ULL << 14)
#define FS_IOCTL_DEV (1ULL << 15)
#define FS_FILE_ONLY (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)
#define NET_CONNECT_TCP (1ULL << 1)
#define SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
	uint64_t handled_fs, handled_net, scoped;
};

struct ll_path_attr {
	uint64_t allowed;
	int32_t parent_fd;
} __attribute__((packed));

struct ll_port_attr {
	uint64_t allowed, port;
};

int sbx_landlock_abi(void)
{
	long v = syscall(LL_CREATE_RULESET, NULL, 0, LL_CREATE_RULESET_VERSION);

	return v > 0 ? (int)v : 0;
}

/* The file-system rights ABI `abi` knows. */
static uint64_t fs_rights(int abi)
{
	if (abi >= 5)
		return (1ULL << 16) - 1;
	if (abi >= 3)
		return (1ULL << 15) - 1;
	if (abi == 2)
		return (1ULL << 14) - 1;
	return (1ULL << 13) - 1;
}

/* Allow `want` (masked to what is handled and to the kind of file)
 * beneath `path`; an absent path is skipped. */
static int allow_path(int rs, const char *path, uint64_t want, uint64_t handled)
{
	struct ll_path_attr a;
	struct stat st;
	int fd = open(path, O_PATH | O_CLOEXEC), rc;

	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 0 : -1;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return -1;
	}
	a.allowed = want & handled & (S_ISDIR(st.st_mode) ? ~0ULL : FS_FILE_ONLY);
	a.parent_fd = fd;
	rc = a.allowed ? (int)syscall(LL_ADD_RULE, rs, LL_RULE_PATH_BENEATH, &a, 0) : 0;
	close(fd);
	return rc;
}

static int add_fs_rules(const struct sbx_spawn *sp, int rs, uint64_t fs)
{
	static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx" };
	uint64_t ro = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR, dev = FS_READ_FILE | FS_WRITE_FILE | FS_IOCTL_DEV | FS_READ_DIR;
	size_t i;
	int k;

	for (k = 0; k < sp->nro; k++)
		if (allow_path(rs, sp->ro[k], ro, fs) != 0)
			return -1;
	for (k = 0; k < sp->nrw; k++)
		if (allow_path(rs, sp->rw[k], fs, fs) != 0)
			return -1;
	for (i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
		if (allow_path(rs, devs[i], dev, fs) != 0)
			return -1;
	if (allow_path(rs, "/dev/pts", dev, fs) != 0 || allow_path(rs, "/proc", FS_READ_FILE | FS_READ_DIR, fs) != 0)
		return -1;
	if (sp->level >= SBX_NAMESPACES) {
		/* The box's own tmpfs mounts, and its root's listing. */
		if (allow_path(rs, "/tmp", fs, fs) != 0 || allow_path(rs, "/dev/shm", fs, fs) != 0)
			return -1;
		{
			struct ll_path_attr a;
			int fd = open("/", O_PATH | O_CLOEXEC);
			if (fd < 0)
				return -1;
			a.allowed = FS_READ_DIR;
			a.parent_fd = fd;
			k = (int)syscall(LL_ADD_RULE, rs, LL_RULE_PATH_BENEATH, &a, 0);
			close(fd);
			if (k != 0)
				return -1;
		}
	}
	return 0;
}

int sbx_landlock_apply(const struct sbx_spawn *sp, int net)
{
	struct ll_ruleset_attr attr;
	int abi = sp->landlock_abi, rs, k;
	size_t size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;

	if (abi <= 0)
		return errno = ENOSYS, -1;
	memset(&attr, 0, sizeof(attr));
	attr.handled_fs = fs_rights(abi);
	if (net && abi >= 4)
		attr.handled_net = NET_CONNECT_TCP;
	if (abi >= 6)
		attr.scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL;
	if ((rs = (int)syscall(LL_CREATE_RULESET, &attr, size, 0)) < 0)
		return -1;
	if (add_fs_rules(sp, rs, attr.handled_fs) != 0)
		goto fail;
	for (k = 0; attr.handled_net && k < sp->nports; k++) {
		struct ll_port_attr p = { NET_CONNECT_TCP, (uint64_t)sp->ports[k] };
		if (syscall(LL_ADD_RULE, rs, LL_RULE_NET_PORT, &p, 0) != 0)
			goto fail;
	}
	if (syscall(LL_RESTRICT_SELF, rs, 0) != 0)
		goto fail;
	close(rs);
	return 0;
fail:
	k = errno;
	close(rs);
	errno = k;
	return -1;
}
