/*
 * jiffy-probe: runs inside a container and reports what it sees, as ONE JSON line on stdout.
 * The launcher conformance tests (test/launcher-*.test.ts) ask it questions, crun-style:
 *
 *   probe pid | hostname | cwd | mounts | netdevs | caps | nnp | uid | ps | cgroup | env
 *   probe rlimit NAME            (NOFILE, NPROC, CORE, AS, ...)
 *   probe try-mount | try-chroot (attempt the privileged call, report errno)
 *   probe ls PATH | read PATH | write PATH | stat PATH
 *   probe alloc MB               (allocate and touch MB MiB; the OOM test)
 *   probe forkbomb N             (fork up to N sleeping children until failure)
 *   probe exit N | kill-self SIG
 *
 * Failures of the question itself are reported in the JSON ("ok":false,"errno":N,"error":"EPERM")
 * and the probe exits 0, so the test can tell "the kernel said no" from "the probe broke" (exit 2).
 * Static, libc only, no allocation beyond what a question needs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_MAX (64 * 1024)

/* Print s as a JSON string (quotes included). */
static void json_str(const char *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_cstr(const char *s)
{
	json_str(s, strlen(s));
}

/* Symbolic errno name for the few the tests care about; strerror text otherwise. */
static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EROFS: return "EROFS";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EINVAL: return "EINVAL";
	case EBUSY: return "EBUSY";
	case ENOTDIR: return "ENOTDIR";
	case EEXIST: return "EEXIST";
	case EMFILE: return "EMFILE";
	default: return strerror(e);
	}
}

/* {"ok":false,"errno":N,"error":"NAME"} plus a closing newline. */
static int report_errno(const char *op, int e)
{
	printf("{\"ok\":false,\"op\":");
	json_cstr(op);
	printf(",\"errno\":%d,\"error\":", e);
	json_cstr(errname(e));
	printf("}\n");
	return 0;
}

/* Read a whole small file into buf (NUL-terminated); returns bytes or -errno. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < cap) {
		ssize_t r = read(fd, buf + got, cap - 1 - got);
		if (r < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

static int q_pid(void)
{
	printf("{\"pid\":%d,\"ppid\":%d}\n", getpid(), getppid());
	return 0;
}

static int q_cwd(void)
{
	char buf[4096];
	if (!getcwd(buf, sizeof buf))
		return report_errno("getcwd", errno);
	printf("{\"cwd\":");
	json_cstr(buf);
	printf("}\n");
	return 0;
}

static int q_hostname(void)
{
	char h[256] = { 0 };
	if (gethostname(h, sizeof h - 1) < 0)
		return report_errno("gethostname", errno);
	printf("{\"hostname\":");
	json_cstr(h);
	printf("}\n");
	return 0;
}

/* One mountinfo line: "id parent maj:min root mountpoint options [optional...] - fstype source superopts" */
static void print_mount(char *line, int first)
{
	char *f[16];
	int n = 0;
	for (char *tok = strtok(line, " \n"); tok && n < 16; tok = strtok(NULL, " \n"))
		f[n++] = tok;
	int dash = -1;
	for (int i = 6; i < n; i++)
		if (strcmp(f[i], "-") == 0) { dash = i; break; }
	if (n < 6 || dash < 0 || dash + 2 >= n)
		return;
	printf("%s{\"id\":%s,\"parent\":%s,\"root\":", first ? "" : ",", f[0], f[1]);
	json_cstr(f[3]);
	printf(",\"mountpoint\":");
	json_cstr(f[4]);
	printf(",\"options\":");
	json_cstr(f[5]);
	printf(",\"fstype\":");
	json_cstr(f[dash + 1]);
	printf(",\"source\":");
	json_cstr(f[dash + 2]);
	printf(",\"super\":");
	json_cstr(dash + 3 < n ? f[dash + 3] : "");
	printf("}");
}

static int q_mounts(void)
{
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	if (!fp)
		return report_errno("open /proc/self/mountinfo", errno);
	char line[4096];
	int first = 1;
	printf("{\"mounts\":[");
	while (fgets(line, sizeof line, fp)) {
		print_mount(line, first);
		first = 0;
	}
	fclose(fp);
	printf("]}\n");
	return 0;
}

static int q_netdevs(void)
{
	struct if_nameindex *ifs = if_nameindex();
	if (!ifs)
		return report_errno("if_nameindex", errno);
	printf("{\"netdevs\":[");
	for (struct if_nameindex *i = ifs; i->if_index != 0; i++) {
		printf("%s", i == ifs ? "" : ",");
		json_cstr(i->if_name);
	}
	printf("]}\n");
	if_freenameindex(ifs);
	return 0;
}

/* Print the listed "Key:\tvalue" fields of /proc/self/status as JSON strings. */
static int status_fields(const char *const *keys)
{
	char buf[8192];
	ssize_t n = slurp("/proc/self/status", buf, sizeof buf);
	if (n < 0)
		return report_errno("read /proc/self/status", (int)-n);
	printf("{");
	for (int k = 0; keys[k]; k++) {
		char pat[64];
		snprintf(pat, sizeof pat, "\n%s:", keys[k]);
		char *p = strstr(buf, pat);
		const char *v = "";
		if (p) {
			p += strlen(pat);
			p += strspn(p, " \t");
			p[strcspn(p, "\n")] = '\0';
			v = p;
		}
		printf("%s\"%s\":", k ? "," : "", keys[k]);
		json_cstr(v);
		if (p)
			p[strlen(p)] = '\n';
	}
	printf("}\n");
	return 0;
}

static int q_caps(void)
{
	static const char *const keys[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", NULL };
	return status_fields(keys);
}

static int q_nnp(void)
{
	int v = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	if (v < 0)
		return report_errno("prctl PR_GET_NO_NEW_PRIVS", errno);
	printf("{\"nnp\":%d}\n", v);
	return 0;
}

static int q_uid(void)
{
	gid_t groups[64];
	int n = getgroups(64, groups);
	printf("{\"uid\":%u,\"gid\":%u,\"euid\":%u,\"egid\":%u,\"groups\":[", getuid(), getgid(), geteuid(), getegid());
	for (int i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", groups[i]);
	printf("]}\n");
	return 0;
}

/* Numeric entries of /proc: the processes this pid namespace can see. */
static int q_ps(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return report_errno("opendir /proc", errno);
	printf("{\"pids\":[");
	int first = 1;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		printf("%s%s", first ? "" : ",", e->d_name);
		first = 0;
	}
	closedir(d);
	printf("]}\n");
	return 0;
}

static const struct {
	const char *name;
	int res;
} rlimits[] = {
	{ "AS", RLIMIT_AS }, { "CORE", RLIMIT_CORE }, { "CPU", RLIMIT_CPU }, { "DATA", RLIMIT_DATA },
	{ "FSIZE", RLIMIT_FSIZE }, { "LOCKS", RLIMIT_LOCKS }, { "MEMLOCK", RLIMIT_MEMLOCK },
	{ "MSGQUEUE", RLIMIT_MSGQUEUE }, { "NICE", RLIMIT_NICE }, { "NOFILE", RLIMIT_NOFILE },
	{ "NPROC", RLIMIT_NPROC }, { "RSS", RLIMIT_RSS }, { "RTPRIO", RLIMIT_RTPRIO },
	{ "RTTIME", RLIMIT_RTTIME }, { "SIGPENDING", RLIMIT_SIGPENDING }, { "STACK", RLIMIT_STACK },
};

static void print_rlim(const char *key, rlim_t v)
{
	if (v == RLIM_INFINITY)
		printf(",\"%s\":\"unlimited\"", key);
	else
		printf(",\"%s\":%llu", key, (unsigned long long)v);
}

/* Accepts "NOFILE" or "RLIMIT_NOFILE". */
static int q_rlimit(const char *name)
{
	if (strncmp(name, "RLIMIT_", 7) == 0)
		name += 7;
	for (size_t i = 0; i < sizeof rlimits / sizeof rlimits[0]; i++) {
		if (strcmp(rlimits[i].name, name) != 0)
			continue;
		struct rlimit rl;
		if (getrlimit(rlimits[i].res, &rl) < 0)
			return report_errno("getrlimit", errno);
		printf("{\"rlimit\":\"%s\"", rlimits[i].name);
		print_rlim("soft", rl.rlim_cur);
		print_rlim("hard", rl.rlim_max);
		printf("}\n");
		return 0;
	}
	fprintf(stderr, "probe: unknown rlimit %s\n", name);
	return 2;
}

static int q_try_mount(void)
{
	mkdir("/mnt", 0755);
	if (mount("probe", "/mnt", "tmpfs", 0, "size=1m") < 0)
		return report_errno("mount", errno);
	umount("/mnt");
	printf("{\"ok\":true,\"op\":\"mount\"}\n");
	return 0;
}

static int q_try_chroot(void)
{
	if (chroot("/") < 0)
		return report_errno("chroot", errno);
	printf("{\"ok\":true,\"op\":\"chroot\"}\n");
	return 0;
}

static int q_ls(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return report_errno("opendir", errno);
	printf("{\"ok\":true,\"entries\":[");
	int first = 1;
	for (struct dirent *e; (e = readdir(d));) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		printf("%s", first ? "" : ",");
		json_cstr(e->d_name);
		first = 0;
	}
	closedir(d);
	printf("]}\n");
	return 0;
}

/* Reads at most READ_MAX bytes: enough for any small file, bounded for /proc/kcore. */
static int q_read(const char *path)
{
	static char buf[READ_MAX + 1];
	ssize_t n = slurp(path, buf, sizeof buf);
	if (n < 0)
		return report_errno("read", (int)-n);
	printf("{\"ok\":true,\"bytes\":%zd,\"data\":", n);
	json_str(buf, (size_t)n);
	printf("}\n");
	return 0;
}

static int q_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return report_errno("open", errno);
	if (write(fd, "probe\n", 6) != 6) {
		int e = errno;
		close(fd);
		return report_errno("write", e);
	}
	close(fd);
	printf("{\"ok\":true,\"bytes\":6}\n");
	return 0;
}

static const char *ftype(mode_t m)
{
	if (S_ISREG(m)) return "file";
	if (S_ISDIR(m)) return "dir";
	if (S_ISCHR(m)) return "chr";
	if (S_ISBLK(m)) return "blk";
	if (S_ISLNK(m)) return "link";
	if (S_ISFIFO(m)) return "fifo";
	return "sock";
}

static int q_stat(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return report_errno("stat", errno);
	printf("{\"ok\":true,\"type\":\"%s\",\"mode\":%o,\"size\":%lld,\"rdev\":\"%u:%u\",\"uid\":%u,\"gid\":%u}\n",
	       ftype(st.st_mode), st.st_mode & 07777, (long long)st.st_size, major(st.st_rdev), minor(st.st_rdev),
	       st.st_uid, st.st_gid);
	return 0;
}

static int q_cgroup(void)
{
	char buf[8192];
	ssize_t n = slurp("/proc/self/cgroup", buf, sizeof buf);
	if (n < 0)
		return report_errno("read /proc/self/cgroup", (int)-n);
	printf("{\"cgroup\":[");
	int first = 1;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
		printf("%s", first ? "" : ",");
		json_cstr(l);
		first = 0;
	}
	printf("]}\n");
	return 0;
}

/* Touch every page so the memory is charged to the cgroup; report only if we survive. */
static int q_alloc(long mb)
{
	long page = sysconf(_SC_PAGESIZE);
	for (long i = 0; i < mb; i++) {
		char *p = malloc(1 << 20);
		if (!p)
			return report_errno("malloc", ENOMEM);
		for (long off = 0; off < (1 << 20); off += page)
			p[off] = (char)off;
	}
	printf("{\"ok\":true,\"allocated_mb\":%ld}\n", mb);
	return 0;
}

/* Fork sleeping children until fork fails or n succeed; then kill and reap them. */
static int q_forkbomb(long n)
{
	pid_t *kids = calloc((size_t)n, sizeof *kids);
	if (!kids)
		return report_errno("calloc", ENOMEM);
	long forked = 0;
	int err = 0;
	while (forked < n) {
		pid_t p = fork();
		if (p == 0) {
			pause();
			_exit(0);
		}
		if (p < 0) {
			err = errno;
			break;
		}
		kids[forked++] = p;
	}
	for (long i = 0; i < forked; i++)
		kill(kids[i], SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	free(kids);
	printf("{\"ok\":%s,\"forked\":%ld,\"errno\":%d,\"error\":", err ? "false" : "true", forked, err);
	json_cstr(err ? errname(err) : "");
	printf("}\n");
	return 0;
}

static const struct {
	const char *name;
	int sig;
} signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL }, { "ABRT", SIGABRT },
	{ "FPE", SIGFPE }, { "KILL", SIGKILL }, { "SEGV", SIGSEGV }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
	{ "TERM", SIGTERM }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
};

static int parse_signal(const char *s)
{
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
		if (strcmp(signals[i].name, s) == 0)
			return signals[i].sig;
	char *end;
	long v = strtol(s, &end, 10);
	return (*s && !*end && v > 0 && v < 65) ? (int)v : -1;
}

/*
 * The kernel drops signals a pid-namespace init sends itself when it has no handler, so as pid 1
 * kill(getpid(), SIGKILL) does nothing. SEGV is therefore raised by a real fault: a kernel-forced
 * signal kills even init. For other signals we report that we survived.
 */
static int q_kill_self(const char *name)
{
	int sig = parse_signal(name);
	if (sig < 0) {
		fprintf(stderr, "probe: unknown signal %s\n", name);
		return 2;
	}
	fflush(stdout);
	if (sig == SIGSEGV) {
		signal(SIGSEGV, SIG_DFL);
		static volatile int *volatile nowhere;
		*nowhere = 1;
	}
	kill(getpid(), sig);
	usleep(10000);
	printf("{\"ok\":false,\"alive\":true,\"pid\":%d,\"signal\":%d}\n", getpid(), sig);
	return 0;
}

extern char **environ;

static int q_env(void)
{
	printf("{\"env\":[");
	for (char **e = environ; *e; e++) {
		printf("%s", e == environ ? "" : ",");
		json_cstr(*e);
	}
	printf("]}\n");
	return 0;
}

static long num_arg(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "probe: %s needs a number\n", argv[1]);
		exit(2);
	}
	char *end;
	long v = strtol(argv[2], &end, 10);
	if (!*argv[2] || *end || v < 0) {
		fprintf(stderr, "probe: %s: not a number: %s\n", argv[1], argv[2]);
		exit(2);
	}
	return v;
}

static const char *str_arg(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "probe: %s needs an argument\n", argv[1]);
		exit(2);
	}
	return argv[2];
}

static int dispatch(int argc, char **argv)
{
	const char *q = argv[1];
	if (!strcmp(q, "pid")) return q_pid();
	if (!strcmp(q, "hostname")) return q_hostname();
	if (!strcmp(q, "cwd")) return q_cwd();
	if (!strcmp(q, "mounts")) return q_mounts();
	if (!strcmp(q, "netdevs")) return q_netdevs();
	if (!strcmp(q, "caps")) return q_caps();
	if (!strcmp(q, "nnp")) return q_nnp();
	if (!strcmp(q, "uid")) return q_uid();
	if (!strcmp(q, "ps")) return q_ps();
	if (!strcmp(q, "cgroup")) return q_cgroup();
	if (!strcmp(q, "env")) return q_env();
	if (!strcmp(q, "try-mount")) return q_try_mount();
	if (!strcmp(q, "try-chroot")) return q_try_chroot();
	if (!strcmp(q, "rlimit")) return q_rlimit(str_arg(argc, argv));
	if (!strcmp(q, "ls")) return q_ls(str_arg(argc, argv));
	if (!strcmp(q, "read")) return q_read(str_arg(argc, argv));
	if (!strcmp(q, "write")) return q_write(str_arg(argc, argv));
	if (!strcmp(q, "stat")) return q_stat(str_arg(argc, argv));
	if (!strcmp(q, "alloc")) return q_alloc(num_arg(argc, argv));
	if (!strcmp(q, "forkbomb")) return q_forkbomb(num_arg(argc, argv));
	if (!strcmp(q, "exit")) return (int)num_arg(argc, argv);
	if (!strcmp(q, "kill-self")) return q_kill_self(str_arg(argc, argv));
	fprintf(stderr, "probe: unknown question %s\n", q);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: probe pid|hostname|cwd|mounts|netdevs|caps|nnp|uid|ps|cgroup|env|try-mount|try-chroot"
				"|rlimit NAME|ls P|read P|write P|stat P|alloc MB|forkbomb N|exit N|kill-self SIG\n");
		return 2;
	}
	int rc = dispatch(argc, argv);
	fflush(stdout);
	return rc;
}
