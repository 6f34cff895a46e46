/* SPDX-License-Identifier: MIT */
/* config.c -- the SYNCMAP_* environment, read once */
#include "config.h"
#include "envvars.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sm_config sm_cfg;

const struct sm_env_var sm_env[] = {
#define SM_ENV_ROW(id, name, values, help) {name, values, help},
	SM_ENV_LIBRARY(SM_ENV_ROW) SM_ENV_SHIM(SM_ENV_ROW)
#undef SM_ENV_ROW
};

#define ENV(id) (sm_env[sm_env_index(SM_ENV_##id)].name)

static const char *const modes[] = {"auto", "kernel", "fault"};
static const char *const flushes[] = {"auto", "cpu", "msync"};

/* Every variable is read with secure_getenv, never getenv: in a set-user-ID
 * or set-group-ID program (or one with file capabilities) the kernel sets
 * AT_SECURE and glibc's secure_getenv returns NULL, so whoever runs the
 * program cannot change how it persists its data (SYNCMAP_FLUSH=cpu on page
 * cache loses data) or how much it syncs per fault: it gets the defaults. */

static void warn_bad(const char *name, const char *val, const char *why)
{
	fprintf(stderr, "libsyncmap: ignoring %s=%s: %s\n", name, val, why);
}

int sm_parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case 'k':
		v <<= 10;
		end++;
		break;
	case 'm':
		v <<= 20;
		end++;
		break;
	case 'g':
		v <<= 30;
		end++;
		break;
	default: break;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if ((*end == 'b' || *end == 'B'))
		end++;
	if (*end != '\0')
		return -1;
	*out = (size_t)v;
	return 0;
}

static int pick(const char *name, const char *const *words, int n, int dflt)
{
	const char *v = secure_getenv(name);

	if (v == NULL || *v == '\0')
		return dflt;
	for (int i = 0; i < n; i++)
		if (strcasecmp(v, words[i]) == 0)
			return i;
	warn_bad(name, v, "unknown value");
	return dflt;
}

static size_t load_grain(size_t page)
{
	const char *v = secure_getenv(ENV(GRAIN));
	size_t g;

	if (v == NULL || *v == '\0')
		return SM_DEFAULT_GRAIN < page ? page : SM_DEFAULT_GRAIN;
	if (sm_parse_size(v, &g) != 0 || g < page || (g & (g - 1)) != 0 || g > ((size_t)1 << 30)) {
		warn_bad(ENV(GRAIN), v, "want a power of two from the page size to 1G");
		return SM_DEFAULT_GRAIN < page ? page : SM_DEFAULT_GRAIN;
	}
	return g;
}

static int load_int(const char *name, int lo, int hi, int dflt)
{
	const char *v = secure_getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return dflt;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < lo || n > hi) {
		warn_bad(name, v, "out of range");
		return dflt;
	}
	return (int)n;
}

void sm_config_load(void)
{
	sm_cfg.page = (size_t)sysconf(_SC_PAGESIZE);
	sm_cfg.mode = (enum sm_mode_pref)pick(ENV(MODE), modes, 3, SM_PREF_AUTO);
	sm_cfg.flush = (enum sm_flush_pref)pick(ENV(FLUSH), flushes, 3, SM_FLUSH_AUTO);
	sm_cfg.grain = load_grain(sm_cfg.page);
	sm_cfg.presync = load_int(ENV(PRESYNC), 0, 1, 1);
	sm_cfg.presync_depth = load_int(ENV(PRESYNC_DEPTH), 1, 1024, SM_DEFAULT_PRESYNC_DEPTH);
	sm_cfg.reserve = load_int(ENV(RESERVE), 0, 1, 1);
	sm_cfg.stats_at_exit = load_int(ENV(STATS), 0, 1, 0);
}

void sm_env_effective(enum sm_env_id id, char *buf, size_t len)
{
	/* No default: a variable added to SM_ENV_LIBRARY without a case here
	 * is a -Wswitch error. */
	switch (id) {
	case SM_ENV_MODE: snprintf(buf, len, "%s", modes[sm_cfg.mode]); return;
	case SM_ENV_GRAIN: snprintf(buf, len, "%zu", sm_cfg.grain); return;
	case SM_ENV_FLUSH: snprintf(buf, len, "%s", flushes[sm_cfg.flush]); return;
	case SM_ENV_PRESYNC: snprintf(buf, len, "%d", sm_cfg.presync); return;
	case SM_ENV_PRESYNC_DEPTH: snprintf(buf, len, "%d", sm_cfg.presync_depth); return;
	case SM_ENV_RESERVE: snprintf(buf, len, "%d", sm_cfg.reserve); return;
	case SM_ENV_STATS: snprintf(buf, len, "%d", sm_cfg.stats_at_exit); return;
	case SM_ENV_NLIB:
	case SM_ENV_PRELOAD:
	case SM_ENV_PRELOAD_PATHS:
	case SM_ENV_NALL: break;
	}
	snprintf(buf, len, "-");
}
