/*
 * fuzz_cfg: libFuzzer target for the configuration parser (common/cfg.c).
 * cfg_load_flags reads a file by name, so each input is written to an
 * in-memory file (memfd_create) and loaded through /proc/self/fd/N: the
 * whole path the daemon takes (line reader, key table, every value
 * parser, the consistency checks) runs without touching the disk and
 * without starting anything. CFG_LOAD_NO_FILE_CHECKS keeps it from
 * opening files the input names; CFG_LOAD_TO_RUN adds the checks
 * govrelayd -t makes. The value parsers shared with the CLI (sizes,
 * durations, CIDR networks) also get the input's first line directly.
 *
 * Entry points: LLVMFuzzerInitialize, LLVMFuzzerTestOneInput.
 * OWNERSHIP: the memfd lives for the whole process; each run's config
 * and error text are freed before returning.
 * THREADS: libFuzzer's one thread.
 * ERRORS: a violated invariant aborts, which libFuzzer reports as a crash;
 * failing to create the memfd exits at start-up.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_fd = -1;
static char fuzz_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fd = memfd_create("fuzz_cfg", MFD_CLOEXEC);
	if (fuzz_fd < 0) {
		perror("memfd_create");
		exit(1);
	}
	snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fuzz_fd);
	return 0;
}

/* The value parsers on the first line of the input. */
static void fuzz_values(const uint8_t *data, size_t size)
{
	char line[256];
	const uint8_t *nl = memchr(data, '\n', size);
	size_t len = nl != NULL ? (size_t)(nl - data) : size;
	struct cfg_cidr cidr;
	uint64_t v;

	if (len >= sizeof line)
		len = sizeof line - 1;
	memcpy(line, data, len);
	line[len] = '\0';
	(void)cfg_parse_size(line, &v);
	(void)cfg_parse_duration(line, &v);
	(void)cfg_parse_cidr(line, &cidr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	struct buf errors;
	int rc;

	if (size > 64 * 1024)
		return 0;
	if (ftruncate(fuzz_fd, 0) != 0 ||
	    (size > 0 && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size))
		abort();
	buf_init(&errors);
	rc = cfg_load_flags(fuzz_path, CFG_LOAD_NO_FILE_CHECKS | CFG_LOAD_TO_RUN, &cfg, &errors);
	/* Success and failure are exclusive: a config, or error lines. */
	if (rc == 0 ? cfg == NULL : cfg != NULL || errors.len == 0)
		abort();
	cfg_unref(cfg);
	buf_free(&errors);
	fuzz_values(data, size);
	return 0;
}
