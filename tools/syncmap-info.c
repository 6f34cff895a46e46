/* SPDX-License-Identifier: MIT */
/* syncmap-info.c -- what libsyncmap would do for a path: filesystem, DAX, MAP_SYNC, flush, mode */
#include "config.h"
#include "envvars.h"
#include "init.h"
#include "flush.h"
#include "region.h"
#include "sys.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

static const char usage[] =
	"usage: syncmap-info [--json] PATH\n"
	"\n"
	"Reports, for the file or directory PATH: the filesystem and its mount\n"
	"options (is it mounted with dax?), the statx DAX attribute, whether the\n"
	"kernel accepts MAP_SYNC there, the CPU flush instruction libpmem2 uses,\n"
	"eADR, and the mode and persist method libsyncmap would choose.\n"
	"\n"
	"MAP_SYNC is probed on a temporary file created in the directory (PATH, or\n"
	"the directory holding PATH), which is never linked into it; a regular file\n"
	"PATH is also probed itself with a read-only mapping.  Nothing in PATH is\n"
	"ever written.  The mode is the one a real syncmap_mmap() of the temporary\n"
	"file got; for a file whose own answer differs (per-file DAX), or where no\n"
	"temporary file can be made, it is derived from the probe by the library's\n"
	"rules, and the report says so.\n"
	"\n"
	"  --json      one JSON object on stdout, for scripts\n"
	"  -h, --help  this text\n"
	"\n"
	"Environment read by libsyncmap (and shown by this tool as set and as in effect):\n";

/* After the environment list: */
static const char usage_tail[] =
	"Bad values are reported on stderr by the library and the default is used.\n"
	"libpmem2's PMEM_NO_CLWB and PMEM_NO_CLFLUSHOPT change the flush instruction;\n"
	"those set are listed too.  PMEM_NO_FLUSH belongs to libpmem (v1): libpmem2's\n"
	"persist function does not read it, so it is listed as ignored.\n"
	"\n"
	"Exit status: 0 when every probe ran; 1 when PATH is missing or cannot be\n"
	"read, or the MAP_SYNC probe could not run (no permission to create a\n"
	"temporary file, say; the rest is still printed); 2 for a usage error.\n";

struct mount_info {
	char fstype[64], source[256], point[PATH_MAX], opts[512], super[512];
	char dax[32]; /* "always", "inode", "never", "" (no dax option) */
	int found;
};

struct probe {
	int ran;       /* 0: could not probe (why says why) */
	int accepted;  /* the kernel accepted MAP_SYNC */
	char err[32];  /* errno name when refused */
	int dax_known; /* statx reports the DAX attribute */
	int dax;       /* statx says DAX */
	char why[PATH_MAX + 128];
};

struct info {
	const char *path;
	char real[PATH_MAX], dir[PATH_MAX];
	const char *kind; /* "directory", "regular file" */
	unsigned long magic;
	struct mount_info m;
	struct probe self;  /* the path itself (statx; MAP_SYNC read-only for a file) */
	struct probe fresh; /* a temporary file in dir */
	const char *mode, *persist, *mode_source;
	const char *mode_note;	    /* why the mode is what it is, when it needs saying */
	char error[PATH_MAX + 256]; /* why the path could not be examined */
	char mode_buf[128];
	int mismatch; /* the real mapping and the library's rules disagree */
	const char *cpu_flush;
	int eadr;
	int status;
};

static void json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *d = s;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/* The dax option among comma-separated mount options, if any. */
static void find_dax(const char *opts, char *out, size_t outlen)
{
	char buf[512], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", opts);
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "dax") == 0)
			snprintf(out, outlen, "always");
		else if (strncmp(t, "dax=", 4) == 0)
			snprintf(out, outlen, "%s", t + 4);
	}
}

/* The mount holding real (device dev): the longest mount point that is a
 * prefix of it among the mounts of that device (bind mounts share it). */
static void find_mount(const char *real, dev_t dev, struct mount_info *m)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	size_t best = 0;

	memset(m, 0, sizeof(*m));
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		unsigned maj, mn;
		char point[PATH_MAX], opts[512], fstype[64], source[256], super[512];
		const char *sep = strstr(line, " - ");
		size_t plen;

		if (sep == NULL ||
		    sscanf(line, "%*s %*s %u:%u %*s %4095s %511s", &maj, &mn, point, opts) != 4 ||
		    sscanf(sep + 3, "%63s %255s %511s", fstype, source, super) != 3)
			continue;
		if (makedev(maj, mn) != dev)
			continue;
		unescape(point);
		plen = strlen(point);
		if (strncmp(real, point, plen) != 0 ||
		    (plen > 1 && real[plen] != '\0' && real[plen] != '/') || plen < best)
			continue;
		best = plen;
		m->found = 1;
		snprintf(m->point, sizeof(m->point), "%s", point);
		snprintf(m->opts, sizeof(m->opts), "%s", opts);
		snprintf(m->fstype, sizeof(m->fstype), "%s", fstype);
		snprintf(m->source, sizeof(m->source), "%s", source);
		snprintf(m->super, sizeof(m->super), "%s", super);
	}
	if (f != NULL)
		fclose(f);
	m->dax[0] = '\0';
	find_dax(m->opts, m->dax, sizeof(m->dax));
	find_dax(m->super, m->dax, sizeof(m->dax));
}

static void statx_dax(int fd, struct probe *p)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0)
		return;
	p->dax_known = (stx.stx_attributes_mask & STATX_ATTR_DAX) != 0;
	p->dax = p->dax_known && (stx.stx_attributes & STATX_ATTR_DAX) != 0;
}

static const char *err_name(int e)
{
	const char *n = strerrorname_np(e);

	return n != NULL ? n : "unknown error";
}

/* Ask the kernel for MAP_SYNC on fd; never touches the mapping. */
static void probe_mapsync(int fd, int prot, struct probe *p)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	void *a = mmap(NULL, pg, prot, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);

	p->ran = 1;
	if (a != MAP_FAILED) {
		p->accepted = 1;
		munmap(a, pg);
	} else {
		snprintf(p->err, sizeof(p->err), "%s", err_name(errno));
	}
}

/* An unnamed file in dir: O_TMPFILE, or a named one unlinked at once where
 * the filesystem lacks O_TMPFILE.  -1 with the reason in why. */
static int temp_file(const char *dir, char *why, size_t whylen)
{
	char name[PATH_MAX];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	if (errno == EACCES || errno == EPERM || errno == EROFS) {
		snprintf(why, whylen, "cannot create a temporary file in %s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(name, sizeof(name), "%s/.syncmap-info-XXXXXX", dir);
	fd = mkostemp(name, O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "cannot create a temporary file in %s: %s", dir, strerror(errno));
		return -1;
	}
	unlink(name);
	return fd;
}

/* What the library's rules (lib/map.c) give for a file with these probe
 * results; used where no real mapping could be made, and as a cross-check. */
/* The mode syncmap_mmap refuses to give: a value, and its reason apart. */
static const char kernel_refused[] = "SYNCMAP_MODE=kernel: syncmap_mmap fails with EOPNOTSUPP";

static void derive_mode(const struct probe *p, const char **mode, const char **persist, const char **note)
{
	*note = NULL;
	int cpu_ok = sm_flush_cpu_fn() != NULL;

	if (p->accepted && sm_cfg.mode != SM_PREF_FAULT) {
		*mode = "KERNEL";
		*persist = sm_cfg.flush == SM_FLUSH_MSYNC || !cpu_ok ? "msync" : "cache-line flush";
	} else if (!p->accepted && sm_cfg.mode == SM_PREF_KERNEL) {
		*mode = "none";
		*note = kernel_refused;
		*persist = "-";
	} else {
		int cpu = sm_cfg.flush == SM_FLUSH_CPU ||
			  (sm_cfg.flush == SM_FLUSH_AUTO && p->dax && p->accepted);

		*mode = "FAULT";
		*persist = cpu && cpu_ok ? "cache-line flush" : "msync";
	}
}

/* The honest answer: map the temporary file through the library, ask it. */
static int real_mode(int fd, struct info *in)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	struct sm_region *r;
	void *p;
	int m;

	if (ftruncate(fd, (off_t)pg) != 0)
		return -1;
	p = syncmap_mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		if (errno != EOPNOTSUPP)
			return -1;
		in->mode = "none";
		in->mode_note = kernel_refused;
		in->persist = "-";
		return 0;
	}
	m = syncmap_mode(p);
	in->mode = m == SYNCMAP_MODE_KERNEL ? "KERNEL" : m == SYNCMAP_MODE_FAULT ? "FAULT" : "NONE";
	in->persist = "msync";
	if (sm_region_get((uintptr_t)p, &r) == SM_FOUND) {
		if (r->cpu_persist != NULL)
			in->persist = "cache-line flush";
		sm_region_put(r);
	}
	syncmap_munmap(p, pg);
	return 0;
}

static int probe_fresh(struct info *in)
{
	int fd = temp_file(in->dir, in->fresh.why, sizeof(in->fresh.why));
	const char *dm, *dp, *dn;

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)sysconf(_SC_PAGESIZE)) != 0) {
		snprintf(in->fresh.why, sizeof(in->fresh.why), "cannot size a temporary file in %s: %s",
			 in->dir, strerror(errno));
		close(fd);
		return -1;
	}
	statx_dax(fd, &in->fresh);
	probe_mapsync(fd, PROT_READ | PROT_WRITE, &in->fresh);
	if (real_mode(fd, in) != 0) {
		snprintf(in->fresh.why, sizeof(in->fresh.why), "syncmap_mmap of a temporary file in %s: %s",
			 in->dir, strerror(errno));
		close(fd);
		return -1;
	}
	in->mode_source = "a syncmap_mmap of a temporary file";
	derive_mode(&in->fresh, &dm, &dp, &dn);
	in->mismatch = strcmp(dm, in->mode) != 0 || strcmp(dp, in->persist) != 0;
	close(fd);
	return 0;
}

static int examine(struct info *in)
{
	char parent[PATH_MAX];
	struct stat st;
	struct statfs sf;
	int fd, fresh_ok;

	if (stat(in->path, &st) != 0 || realpath(in->path, in->real) == NULL) {
		snprintf(in->error, sizeof(in->error), "%s", strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		snprintf(in->error, sizeof(in->error), "not a regular file or a directory");
		return -1;
	}
	in->kind = S_ISDIR(st.st_mode) ? "directory" : "regular file";
	/* O_RDONLY: the only access this tool ever takes to the user's path. */
	fd = open(in->path, O_RDONLY | O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
	if (fd < 0) {
		snprintf(in->error, sizeof(in->error), "cannot open for reading: %s", strerror(errno));
		return -1;
	}
	if (fstatfs(fd, &sf) == 0)
		in->magic = (unsigned long)sf.f_type;
	statx_dax(fd, &in->self);
	if (S_ISREG(st.st_mode))
		probe_mapsync(fd, PROT_READ, &in->self);
	close(fd);
	find_mount(in->real, st.st_dev, &in->m);
	snprintf(parent, sizeof(parent), "%s", in->real);
	snprintf(in->dir, sizeof(in->dir), "%s", S_ISREG(st.st_mode) ? dirname(parent) : in->real);

	fresh_ok = probe_fresh(in) == 0;
	if (S_ISREG(st.st_mode) &&
	    (!fresh_ok || in->self.accepted != in->fresh.accepted || in->self.dax != in->fresh.dax)) {
		/* The file answers for itself: a new file here differs from it, or
		 * there is none.  The library's rules on the file's own answers. */
		derive_mode(&in->self, &in->mode, &in->persist, &in->mode_note);
		in->mode_source =
			fresh_ok ? "the library's rules on this file's probe (a new file here differs)"
				 : "the library's rules on this file's read-only probe";
		in->mismatch = 0;
		fresh_ok = 1;
	}
	if (!fresh_ok) {
		fprintf(stderr, "syncmap-info: %s: %s\n", in->path, in->fresh.why);
		in->mode = "unknown";
		in->persist = "unknown";
		in->mode_source = in->fresh.why;
		in->status = 1;
	}
	if (in->mismatch) {
		fprintf(stderr,
			"syncmap-info: %s: the library chose %s/%s, its rules as this tool knows them "
			"say otherwise: report this\n",
			in->path, in->mode, in->persist);
		in->status = 1;
	}
	in->cpu_flush = sm_flush_cpu_name();
	in->eadr = sm_flush_eadr();
	return 0;
}

/* ---- output ---- */

/* The library's variables as in effect, from the one table (envvars.h). */
static char effective[SM_ENV_NLIB][32];

/* "  NAME=VALUES   help", the help wrapped to 80 columns under itself. */
static void print_env_help(FILE *out, const struct sm_env_var *v)
{
	char head[64];
	const char *h = v->help;
	int col = 34, first = 1;

	snprintf(head, sizeof(head), "%s=%s", v->name, v->values);
	if (strlen(head) > 31)
		fprintf(out, "  %s\n%*s", head, col, "");
	else
		fprintf(out, "  %-31s ", head);
	while (*h != '\0') {
		size_t n = strcspn(h, " ");

		if (!first && col + 1 + (int)n > 80) {
			fprintf(out, "\n%*s", 34, "");
			col = 34;
		} else if (!first) {
			fputc(' ', out);
			col++;
		}
		fprintf(out, "%.*s", (int)n, h);
		col += (int)n;
		first = 0;
		h += n;
		h += strspn(h, " ");
	}
	fputc('\n', out);
}

static void print_usage(FILE *out)
{
	fputs(usage, out);
	for (size_t i = 0; i < SM_ENV_COUNT; i++)
		print_env_help(out, &sm_env[i]);
	fputs(usage_tail, out);
}

/* The PMEM_NO_* variables a user may expect to matter.  ignored: libpmem2
 * (1.12, pmem2_get_persist_fn) never reads it; only libpmem (v1) does. */
static const struct {
	const char *name;
	int ignored;
} pmem_env[] = {{"PMEM_NO_CLWB", 0}, {"PMEM_NO_CLFLUSHOPT", 0}, {"PMEM_NO_FLUSH", 1}};

#define NENV ((size_t)SM_ENV_NLIB)
#define NPMEM (sizeof(pmem_env) / sizeof(pmem_env[0]))

static const char *yesno(int v)
{
	return v ? "yes" : "no";
}

static void text_probe_line(const char *what, const struct probe *p)
{
	if (!p->ran)
		printf("%s not probed (%s)\n", what, p->why);
	else if (p->accepted)
		printf("%s accepted\n", what);
	else
		printf("%s refused (%s)\n", what, p->err);
}

static void print_text(const struct info *in)
{
	printf("syncmap-info: %s\n", in->path);
	printf("  path           %s (%s)\n", in->real, in->kind);
	printf("  filesystem     %s (magic 0x%lx), mounted on %s from %s\n", in->m.found ? in->m.fstype : "?",
	       in->magic, in->m.found ? in->m.point : "?", in->m.found ? in->m.source : "?");
	printf("  mount options  %s; super: %s\n", in->m.found ? in->m.opts : "?",
	       in->m.found ? in->m.super : "?");
	printf("  dax mount      %s\n", in->m.dax[0] ? in->m.dax : "no");
	if (!in->self.dax_known)
		printf("  statx DAX      not reported by this kernel (before 5.8)\n");
	else if (in->fresh.ran)
		printf("  statx DAX      %s: %s; a new file here: %s\n", in->kind, yesno(in->self.dax),
		       yesno(in->fresh.dax));
	else
		printf("  statx DAX      %s: %s\n", in->kind, yesno(in->self.dax));
	if (in->self.ran)
		text_probe_line("  MAP_SYNC       this file (read-only mapping):", &in->self);
	text_probe_line("  MAP_SYNC       a new file here:", &in->fresh);
	printf("  cpu flush      %s (libpmem2)\n", in->cpu_flush);
	printf("  eADR           %s\n", yesno(in->eadr));
	if (in->mode_note != NULL)
		printf("  syncmap mode   %s (%s)\n", in->mode, in->mode_note);
	else
		printf("  syncmap mode   %s\n", in->mode);
	printf("  persist by     %s\n", in->persist);
	printf("  decided by     %s\n", in->mode_source);
	for (size_t i = 0; i < NENV; i++) {
		const char *v = getenv(sm_env[i].name);

		printf("  %-14s %s=%s (in effect: %s)\n", i == 0 ? "environment" : "", sm_env[i].name,
		       v != NULL ? v : "<unset>", effective[i]);
	}
	for (size_t i = 0; i < NPMEM; i++)
		if (getenv(pmem_env[i].name) != NULL)
			printf("  %-14s %s=%s%s\n", "", pmem_env[i].name, getenv(pmem_env[i].name),
			       pmem_env[i].ignored ? " (ignored: libpmem2 does not read it)" : "");
}

static void json_probe(const char *key, const struct probe *p, int last)
{
	printf("  ");
	json_str(key);
	printf(": {\"probed\": %s, \"accepted\": %s, \"error\": ", p->ran ? "true" : "false",
	       p->ran ? (p->accepted ? "true" : "false") : "null");
	if (p->ran && !p->accepted)
		json_str(p->err);
	else
		printf("null");
	printf(", \"why_not_probed\": ");
	if (p->ran)
		printf("null");
	else
		json_str(p->why);
	printf("}%s\n", last ? "" : ",");
}

static void json_kv(const char *k, const char *v, int comma)
{
	printf("  ");
	json_str(k);
	printf(": ");
	json_str(v);
	printf("%s\n", comma ? "," : "");
}

static void print_json(const struct info *in)
{
	printf("{\n");
	json_kv("path", in->path, 1);
	json_kv("realpath", in->real, 1);
	json_kv("kind", in->kind, 1);
	printf("  \"filesystem\": {\"type\": ");
	json_str(in->m.found ? in->m.fstype : "");
	printf(", \"magic\": %lu, \"mount_point\": ", in->magic);
	json_str(in->m.point);
	printf(", \"source\": ");
	json_str(in->m.source);
	printf(", \"options\": ");
	json_str(in->m.opts);
	printf(", \"super_options\": ");
	json_str(in->m.super);
	printf(", \"dax\": ");
	json_str(in->m.dax[0] ? in->m.dax : "no");
	printf("},\n");
	printf("  \"statx_dax\": {\"reported\": %s, \"path\": %s, \"new_file\": %s},\n",
	       in->self.dax_known ? "true" : "false", in->self.dax ? "true" : "false",
	       in->fresh.ran ? (in->fresh.dax ? "true" : "false") : "null");
	if (in->self.ran)
		json_probe("map_sync_path", &in->self, 0);
	json_probe("map_sync_new_file", &in->fresh, 0);
	json_kv("cpu_flush", in->cpu_flush, 1);
	printf("  \"eadr\": %s,\n", in->eadr ? "true" : "false");
	json_kv("mode", in->mode, 1);
	if (in->mode_note != NULL)
		json_kv("mode_note", in->mode_note, 1);
	json_kv("persist", in->persist, 1);
	json_kv("decided_by", in->mode_source, 1);
	printf("  \"environment\": {");
	for (size_t i = 0; i < NENV; i++) {
		const char *v = getenv(sm_env[i].name);

		printf("%s\n    ", i ? "," : "");
		json_str(sm_env[i].name);
		printf(": {\"set\": ");
		if (v != NULL)
			json_str(v);
		else
			printf("null");
		printf(", \"in_effect\": ");
		json_str(effective[i]);
		printf("}");
	}
	for (size_t i = 0; i < NPMEM; i++) {
		if (getenv(pmem_env[i].name) == NULL)
			continue;
		printf(",\n    ");
		json_str(pmem_env[i].name);
		printf(": {\"set\": ");
		json_str(getenv(pmem_env[i].name));
		printf(", \"ignored\": %s}", pmem_env[i].ignored ? "true" : "false");
	}
	printf("\n  }\n}\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
					   {"help", no_argument, NULL, 'h'},
					   {"version", no_argument, NULL, 'V'},
					   {NULL, 0, NULL, 0}};
	struct info in;
	int json = 0, c;

	while ((c = getopt_long(argc, argv, "hV", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'h': print_usage(stdout); return 0;
		case 'V': printf("syncmap-info (libsyncmap) %s\n", syncmap_version_string()); return 0;
		default: print_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		print_usage(stderr);
		return 2;
	}
	memset(&in, 0, sizeof(in));
	in.path = argv[optind];
	sm_init(); /* the library's settings, read as the library reads them */
	for (size_t i = 0; i < NENV; i++)
		sm_env_effective((enum sm_env_id)i, effective[i], sizeof(effective[i]));
	if (examine(&in) != 0) {
		/* With --json a script reads stdout only: the error is an object
		 * there too, and the exit status says it failed. */
		if (json) {
			printf("{\n");
			json_kv("path", in.path, 1);
			json_kv("error", in.error, 0);
			printf("}\n");
		}
		fprintf(stderr, "syncmap-info: %s: %s\n", in.path, in.error);
		return 1;
	}
	if (json)
		print_json(&in);
	else
		print_text(&in);
	return in.status;
}
