#ifndef GOVRELAY_TESTS_FIXTURE_ZIP_H
#define GOVRELAY_TESTS_FIXTURE_ZIP_H
/*
 * fixture_zip: archives built in memory at test time with libarchive's
 * writer, for test_doctext and test_attach (OOXML and ODF packages,
 * encrypted zips, nested archives, bombs). Nothing touches the disk.
 *
 * OWNERSHIP: fx_archive returns an xmalloc'd buffer the caller frees.
 * THREADS: any. ERRORS: a writer failure fails the test (ck_abort).
 */
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

/* One file of an archive: data, or repeat copies of it (bombs). */
struct fx_file {
	const char *name;
	const char *data;
	size_t len;            /* 0: strlen(data) */
	size_t repeat;         /* 0: once */
	int store;             /* zip: 1 stored, -1 deflated from this entry on */
};

/* FX_GZ: one file, gzip-compressed (no archive around it). */
enum fx_format { FX_ZIP, FX_TARGZ, FX_GZ };

static inline size_t fx_len(const struct fx_file *f)
{
	return f->len != 0 ? f->len : strlen(f->data);
}

/*
 * An archive of n files. options (NULL: none) are writer options such as
 * "zip:encryption=zipcrypt"; passphrase (NULL: none) goes with them.
 */
static inline char *fx_archive(enum fx_format fmt, const struct fx_file *files, size_t n,
    const char *options, const char *passphrase, size_t *outlen)
{
	struct archive *a = archive_write_new();
	size_t i, r, total = 0, cap, used = 0;
	char *out;

	for (i = 0; i < n; i++)
		total += fx_len(&files[i]) * (files[i].repeat ? files[i].repeat : 1);
	/* Stored entries need their size; bombs compress far below 4 MiB. */
	cap = (total < ((size_t)4 << 20) ? total : ((size_t)4 << 20)) + n * 1024 + 65536;
	out = xmalloc(cap);
	if (fmt == FX_ZIP) {
		ck_assert_int_eq(archive_write_set_format_zip(a), ARCHIVE_OK);
	} else {
		ck_assert_int_eq(fmt == FX_GZ ? archive_write_set_format_raw(a) :
		    archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
		ck_assert_int_eq(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	}
	if (options != NULL)
		ck_assert_msg(archive_write_set_options(a, options) == ARCHIVE_OK, "%s: %s",
		    options, archive_error_string(a));
	if (passphrase != NULL)
		ck_assert_int_eq(archive_write_set_passphrase(a, passphrase), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_memory(a, out, cap, &used), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t len = fx_len(&files[i]), reps = files[i].repeat ? files[i].repeat : 1;

		if (files[i].store > 0)
			ck_assert_int_eq(archive_write_zip_set_compression_store(a), ARCHIVE_OK);
		else if (files[i].store < 0)
			ck_assert_int_eq(archive_write_zip_set_compression_deflate(a), ARCHIVE_OK);
		archive_entry_set_pathname(e, files[i].name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)(len * reps));
		archive_entry_set_mtime(e, 1700000000, 0);
		ck_assert_msg(archive_write_header(a, e) == ARCHIVE_OK, "%s",
		    archive_error_string(a));
		for (r = 0; r < reps; r++)
			ck_assert_msg(archive_write_data(a, files[i].data, len) == (la_ssize_t)len,
			    "%s", archive_error_string(a));
		archive_entry_free(e);
	}
	ck_assert_msg(archive_write_close(a) == ARCHIVE_OK, "%s", archive_error_string(a));
	archive_write_free(a);
	*outlen = used;
	return out;
}
#endif
