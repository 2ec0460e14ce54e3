/*
 * test_attach: attachment inspection (policy/attach.c): types by content
 * through libmagic, categories from type, first bytes and file name, and
 * archive listings from memory with libarchive, on archives built here
 * at test time: an ELF (/bin/true's own bytes) and a minimal PE inside
 * zips, archives nested three deep, zip and gzip bombs, too many
 * entries, a zipcrypt-encrypted zip, garbage.
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test; one test
 * types on several threads at once (one libmagic handle per thread).
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "policy/attach.h"
#include "policy/doctext.h"
#include "tests/unit/fixture_zip.h"

#define N_CASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* --------------------------------------------------------------- fixtures */

/* A minimal PE: DOS header, e_lfanew at 0x3C, "PE\0\0" and an i386 COFF header. */
static char *mk_pe(size_t *len)
{
	char *p = xcalloc(1, 512);

	p[0] = 'M';
	p[1] = 'Z';
	p[0x3C] = 0x40;
	memcpy(p + 0x40, "PE\0\0\x4C\x01", 6);
	*len = 512;
	return p;
}

static char *mk_elf(size_t *len)
{
	FILE *f = fopen("/bin/true", "rb");
	struct buf b;
	char chunk[8192];
	size_t n;

	ck_assert_ptr_nonnull(f);
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	ck_assert_uint_gt(b.len, 1000);
	return buf_steal(&b, len);
}

static char *mk_text(size_t *len)
{
	static const char t[] = "Kính gửi Sở Nội vụ,\nBáo cáo tình hình quý III.\n";

	*len = sizeof t - 1;
	return xmemdup(t, *len);
}

static char *mk_shell(size_t *len)
{
	static const char t[] = "#!/bin/sh\nrm -rf \"$HOME\"\n";

	*len = sizeof t - 1;
	return xmemdup(t, *len);
}

static char *mk_pdf(size_t *len)
{
	static const char t[] = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";

	*len = sizeof t - 1;
	return xmemdup(t, *len);
}

static char *mk_empty(size_t *len)
{
	*len = 0;
	return xmalloc(1);
}

static char *mk_garbage(size_t *len)
{
	char *g = xmalloc(4096);
	size_t i;

	for (i = 0; i < 4096; i++)
		g[i] = (char)((i * 7919 + 13) % 251);
	*len = 4096;
	return g;
}

static char *mk_zip_elf(size_t *len)
{
	size_t elen;
	char *elf = mk_elf(&elen), *z;
	struct fx_file f[] = {
		{ .name = "readme.txt", .data = "Xem tệp đính kèm.\n" },
		{ .name = "tools/", .data = "" },
		{ .name = "tools/true", .data = elf, .len = elen },
	};

	z = fx_archive(FX_ZIP, f, 3, NULL, NULL, len);
	free(elf);
	return z;
}

/* An executable that calls itself a photo. */
static char *mk_zip_pe(size_t *len)
{
	size_t plen;
	char *pe = mk_pe(&plen), *z;
	struct fx_file f[] = { { .name = "anh/photo.jpg", .data = pe, .len = plen } };

	z = fx_archive(FX_ZIP, f, 1, NULL, NULL, len);
	free(pe);
	return z;
}

/* zip { a.txt, inner.zip { inner.tar.gz { deep/payload.exe } } } */
static char *mk_nested(size_t *len)
{
	struct fx_file l3[] = { { .name = "deep/payload.exe", .data = "chỉ là chữ\n" } };
	size_t n3, n2;
	char *b3 = fx_archive(FX_TARGZ, l3, 1, NULL, NULL, &n3), *b2, *b1;
	struct fx_file l2[] = { { .name = "inner.tar.gz", .data = b3, .len = n3 } };

	b2 = fx_archive(FX_ZIP, l2, 1, NULL, NULL, &n2);
	{
		struct fx_file l1[] = {
			{ .name = "a.txt", .data = "Thư mời họp.\n" },
			{ .name = "inner.zip", .data = b2, .len = n2 },
		};

		b1 = fx_archive(FX_ZIP, l1, 2, NULL, NULL, len);
	}
	free(b3);
	free(b2);
	return b1;
}

static char zeros[65536];

/* 32 MiB of zeros: about 32 KiB deflated, a ratio near 1000. */
static char *mk_zip_bomb(size_t *len)
{
	struct fx_file f[] = {
		{ .name = "note.txt", .data = "Bảng lương.\n" },
		{ .name = "zeros.bin", .data = zeros, .len = sizeof zeros, .repeat = 512 },
	};

	return fx_archive(FX_ZIP, f, 2, NULL, NULL, len);
}

/* The same as one gzip-compressed file: no size is declared anywhere. */
static char *mk_gz_bomb(size_t *len)
{
	struct fx_file f[] = { { .name = "zeros.bin", .data = zeros, .len = sizeof zeros,
	    .repeat = 512 } };

	return fx_archive(FX_GZ, f, 1, NULL, NULL, len);
}

static char *mk_gz_text(size_t *len)
{
	struct fx_file f[] = { { .name = "thu.txt", .data = "Thư gửi đồng nghiệp.\n" } };

	return fx_archive(FX_GZ, f, 1, NULL, NULL, len);
}

static char *mk_zip_many(size_t *len)
{
	struct fx_file f[50];
	static char names[50][24];
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(names[i], sizeof names[i], "f%02d.txt", i);
		f[i] = (struct fx_file){ .name = names[i], .data = "x\n" };
	}
	return fx_archive(FX_ZIP, f, 50, NULL, NULL, len);
}

static char *mk_zip_encrypted(size_t *len)
{
	size_t plen;
	char *pe = mk_pe(&plen), *z;
	struct fx_file f[] = {
		{ .name = "bao_cao.docx", .data = "PK không thật" },
		{ .name = "setup.exe", .data = pe, .len = plen },
	};

	z = fx_archive(FX_ZIP, f, 2, "zip:encryption=zipcrypt", "mật khẩu", len);
	free(pe);
	return z;
}

static char *mk_targz(size_t *len)
{
	struct fx_file f[] = {
		{ .name = "docs/a.txt", .data = "một\n" },
		{ .name = "docs/b.sh", .data = "#!/bin/sh\necho hai\n" },
		{ .name = "docs/c.pdf", .data = "%PDF-1.4\n%%EOF\n" },
	};

	return fx_archive(FX_TARGZ, f, 3, NULL, NULL, len);
}

static char *mk_zip_truncated(size_t *len)
{
	char *z = mk_zip_elf(len);

	*len /= 2;
	return z;
}

/* --------------------------------------------------------------- types */

static const struct {
	const char *label;
	char *(*make)(size_t *len);
	const char *mime;
	enum attach_category cat;  /* attach_classify with no name */
} type_cases[] = {
	{ "minimal PE", mk_pe, "application/vnd.microsoft.portable-executable",
	  ATTACH_EXECUTABLE },
	{ "/bin/true", mk_elf, NULL, ATTACH_EXECUTABLE },
	{ "Vietnamese text", mk_text, "text/plain", ATTACH_DOCUMENT },
	{ "shell script", mk_shell, "text/x-shellscript", ATTACH_SCRIPT },
	{ "pdf", mk_pdf, "application/pdf", ATTACH_DOCUMENT },
	{ "zip", mk_zip_elf, "application/zip", ATTACH_ARCHIVE },
	{ "gzip", mk_gz_text, "application/gzip", ATTACH_ARCHIVE },
	{ "tar.gz", mk_targz, "application/gzip", ATTACH_ARCHIVE },
	{ "empty", mk_empty, "application/x-empty", ATTACH_OTHER },
	{ "garbage", mk_garbage, "application/octet-stream", ATTACH_OTHER },
};

START_TEST(test_type)
{
	char mime[128];
	size_t len;
	char *d = type_cases[_i].make(&len);

	ck_assert_int_eq(attach_type_of(d, len, mime, sizeof mime), 0);
	if (type_cases[_i].mime != NULL)
		ck_assert_msg(strcmp(mime, type_cases[_i].mime) == 0, "%s: %s",
		    type_cases[_i].label, mime);
	ck_assert_msg(attach_classify(mime, d, len, NULL) == type_cases[_i].cat, "%s: %s (%s)",
	    type_cases[_i].label, attach_category_name(attach_classify(mime, d, len, NULL)), mime);
	free(d);
}
END_TEST

START_TEST(test_type_edges)
{
	char small[8];

	ck_assert_int_eq(attach_type_of("x", 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(attach_type_of(NULL, 3, small, sizeof small), -EINVAL);
	ck_assert_int_eq(attach_type_of("%PDF-1.4\n", 9, small, sizeof small), 0);
	ck_assert_str_eq(small, "applica");
}
END_TEST

static const struct {
	const char *label;
	const char *mime;
	const char *head;
	size_t head_len;
	const char *name;
	enum attach_category cat;
} class_cases[] = {
	{ "exe by name", "application/octet-stream", NULL, 0, "setup.exe", ATTACH_EXECUTABLE },
	{ "double extension", "application/pdf", NULL, 0, "hoa_don.pdf.exe", ATTACH_EXECUTABLE },
	{ "upper case and trailing dot and space", NULL, NULL, 0, "HOA_DON.SCR. ",
	  ATTACH_EXECUTABLE },
	{ "windows path", NULL, NULL, 0, "C:\\Users\\a\\x.lnk", ATTACH_EXECUTABLE },
	{ "unix path", NULL, NULL, 0, "a/b.tar/x.vbs", ATTACH_EXECUTABLE },
	{ "js", "text/plain", NULL, 0, "invoice.js", ATTACH_EXECUTABLE },
	{ "hta", "text/html", NULL, 0, "x.hta", ATTACH_EXECUTABLE },
	{ "ps1", "text/plain", NULL, 0, "x.ps1", ATTACH_EXECUTABLE },
	{ "msi", NULL, NULL, 0, "x.msi", ATTACH_EXECUTABLE },
	{ "jar", "application/zip", NULL, 0, "x.jar", ATTACH_EXECUTABLE },
	{ "apk", "application/zip", NULL, 0, "x.apk", ATTACH_EXECUTABLE },
	{ "settingcontent-ms", NULL, NULL, 0, "x.settingcontent-ms", ATTACH_EXECUTABLE },
	{ "MZ head named pdf", "application/pdf", "MZ\x90\0", 4, "bao_cao.pdf",
	  ATTACH_EXECUTABLE },
	{ "ELF head, no name", "application/octet-stream", "\177ELF\2\1\1", 7, NULL,
	  ATTACH_EXECUTABLE },
	{ "Mach-O 64 head", NULL, "\xCF\xFA\xED\xFE\x07", 5, "app", ATTACH_EXECUTABLE },
	{ "shell link head", NULL, "\x4C\0\0\0\x01\x14\x02\0\0\0", 10, "anh.jpg",
	  ATTACH_EXECUTABLE },
	{ "dosexec type", "application/x-dosexec", NULL, 0, "a.txt", ATTACH_EXECUTABLE },
	{ "java archive type", "application/java-archive", NULL, 0, "a.zip",
	  ATTACH_EXECUTABLE },
	{ "batch type", "text/x-msdos-batch", NULL, 0, NULL, ATTACH_EXECUTABLE },
	{ "shebang", "text/plain", "#!/usr/bin/perl\n", 16, "notes.txt", ATTACH_SCRIPT },
	{ "shellscript type", "text/x-shellscript", NULL, 0, NULL, ATTACH_SCRIPT },
	{ "javascript type", "application/javascript", NULL, 0, NULL, ATTACH_SCRIPT },
	{ "python by name", "text/plain", NULL, 0, "x.py", ATTACH_SCRIPT },
	{ "zip", "application/zip", "PK\3\4", 4, "x.zip", ATTACH_ARCHIVE },
	{ "7z type", "application/x-7z-compressed", NULL, 0, "x.bin.txt", ATTACH_ARCHIVE },
	{ "rar by name", "application/octet-stream", NULL, 0, "x.rar", ATTACH_ARCHIVE },
	{ "iso by name", NULL, NULL, 0, "x.iso", ATTACH_ARCHIVE },
	{ "docx type", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	  "PK\3\4", 4, "x.docx", ATTACH_DOCUMENT },
	{ "odt type", "application/vnd.oasis.opendocument.text", NULL, 0, "x.odt",
	  ATTACH_DOCUMENT },
	{ "docx that is a zip", "application/zip", NULL, 0, "x.docx", ATTACH_ARCHIVE },
	{ "text", "text/plain", "Kính gửi", 10, "thu.txt", ATTACH_DOCUMENT },
	{ "image", "image/png", "\x89PNG", 4, "anh.png", ATTACH_OTHER },
	{ "no extension", NULL, NULL, 0, "README", ATTACH_OTHER },
	{ "dot only", NULL, NULL, 0, ".", ATTACH_OTHER },
	{ "hidden file, no extension", NULL, NULL, 0, "dir.exe/.profile", ATTACH_OTHER },
	{ "nothing known", NULL, NULL, 0, NULL, ATTACH_OTHER },
	{ "long extension", NULL, NULL, 0, "x.abcdefghijklmnopqrstuvwxyzabcdefghij", ATTACH_OTHER },
};

START_TEST(test_classify)
{
	enum attach_category c = attach_classify(class_cases[_i].mime, class_cases[_i].head,
	    class_cases[_i].head_len, class_cases[_i].name);

	ck_assert_msg(c == class_cases[_i].cat, "%s: %s", class_cases[_i].label,
	    attach_category_name(c));
}
END_TEST

/* --------------------------------------------------------------- lists */

struct seen {
	struct buf names;   /* "depth:name:category:enc;" for each entry */
	int64_t size_of_true;
	int stop_at;
	int n;
};

static int record(void *arg, const struct attach_entry *e)
{
	struct seen *s = arg;

	ck_assert_ptr_nonnull(e->name);
	ck_assert_ptr_nonnull(e->mime);
	ck_assert_uint_le(e->head_len, 4096);
	buf_printf(&s->names, "%u:%s:%s%s;", e->depth, e->name,
	    attach_category_name(e->category), e->encrypted ? ":enc" : "");
	if (strcmp(e->name, "tools/true") == 0)
		s->size_of_true = e->size;
	if (++s->n == s->stop_at)
		return 7;
	return 0;
}

static const struct {
	const char *label;
	char *(*make)(size_t *len);
	struct attach_limits lim;
	int status;
	const char *entries;     /* what record() wrote */
	enum attach_category worst;
	bool encrypted;
	unsigned depth;
} list_cases[] = {
	{ "ELF inside a zip", mk_zip_elf, { 0 }, ATTACH_OK,
	  "1:readme.txt:document;1:tools/true:executable;", ATTACH_EXECUTABLE, false, 1 },
	{ "PE named photo.jpg", mk_zip_pe, { 0 }, ATTACH_OK,
	  "1:anh/photo.jpg:executable;", ATTACH_EXECUTABLE, false, 1 },
	{ "nested three deep", mk_nested, { 0 }, ATTACH_OK,
	  "1:a.txt:document;1:inner.zip:archive;2:inner.tar.gz:archive;"
	  "3:deep/payload.exe:executable;", ATTACH_EXECUTABLE, false, 3 },
	{ "nested past a depth of 2", mk_nested, { .max_depth = 2 }, ATTACH_E_DEPTH,
	  "1:a.txt:document;1:inner.zip:archive;2:inner.tar.gz:archive;",
	  ATTACH_ARCHIVE, false, 2 },
	{ "tar.gz", mk_targz, { 0 }, ATTACH_OK,
	  "1:docs/a.txt:document;1:docs/b.sh:executable;1:docs/c.pdf:document;",
	  ATTACH_EXECUTABLE, false, 1 },
	{ "a single gzip-compressed file", mk_gz_text, { 0 }, ATTACH_OK,
	  "1:data:document;", ATTACH_DOCUMENT, false, 1 },
	{ "zip bomb past its declared size", mk_zip_bomb,
	  { .max_inflated = (size_t)8 << 20, .max_ratio = 100000 }, ATTACH_E_INFLATED,
	  "1:note.txt:document;", ATTACH_DOCUMENT, false, 1 },
	{ "zip bomb past the ratio", mk_zip_bomb, { 0 }, ATTACH_E_RATIO,
	  "1:note.txt:document;", ATTACH_DOCUMENT, false, 1 },
	{ "gzip bomb past the bytes read", mk_gz_bomb,
	  { .max_inflated = (size_t)8 << 20, .max_ratio = 100000 }, ATTACH_E_INFLATED,
	  "", ATTACH_OTHER, false, 1 },
	{ "gzip bomb past the ratio", mk_gz_bomb, { 0 }, ATTACH_E_RATIO, "", ATTACH_OTHER,
	  false, 1 },
	{ "50 entries past 10", mk_zip_many, { .max_entries = 10 }, ATTACH_E_ENTRIES,
	  "1:f00.txt:document;1:f01.txt:document;1:f02.txt:document;1:f03.txt:document;"
	  "1:f04.txt:document;1:f05.txt:document;1:f06.txt:document;1:f07.txt:document;"
	  "1:f08.txt:document;1:f09.txt:document;", ATTACH_DOCUMENT, false, 1 },
	{ "zipcrypt: names listed, contents not read", mk_zip_encrypted, { 0 }, ATTACH_OK,
	  "1:bao_cao.docx:document:enc;1:setup.exe:executable:enc;", ATTACH_EXECUTABLE,
	  true, 1 },
	{ "truncated zip", mk_zip_truncated, { 0 }, ATTACH_E_FORMAT, NULL, ATTACH_OTHER,
	  false, 1 },
	{ "garbage", mk_garbage, { 0 }, ATTACH_E_FORMAT, "", ATTACH_OTHER, false, 0 },
	{ "plain text", mk_text, { 0 }, ATTACH_E_FORMAT, "", ATTACH_OTHER, false, 0 },
	{ "a PE", mk_pe, { 0 }, ATTACH_E_FORMAT, "", ATTACH_OTHER, false, 0 },
	{ "empty", mk_empty, { 0 }, ATTACH_E_FORMAT, "", ATTACH_OTHER, false, 0 },
};

START_TEST(test_list)
{
	struct attach_summary sum;
	struct seen s = { .stop_at = -1 };
	size_t len;
	char *d = list_cases[_i].make(&len);
	int st;

	buf_init(&s.names);
	st = attach_list(d, len, &list_cases[_i].lim, record, &s, &sum);
	ck_assert_msg(st == list_cases[_i].status, "%s: %s", list_cases[_i].label,
	    attach_status_name(st));
	if (list_cases[_i].entries != NULL) {
		ck_assert_msg(strcmp(buf_cstr(&s.names), list_cases[_i].entries) == 0, "%s: %s",
		    list_cases[_i].label, buf_cstr(&s.names));
		ck_assert_msg(sum.worst == list_cases[_i].worst, "%s: worst %s",
		    list_cases[_i].label, attach_category_name(sum.worst));
		ck_assert_msg(sum.depth == list_cases[_i].depth, "%s: depth %u",
		    list_cases[_i].label, sum.depth);
	}
	ck_assert_msg(sum.encrypted == list_cases[_i].encrypted, "%s: encrypted",
	    list_cases[_i].label);
	/* Never more inflated than the limit and one read past it. */
	ck_assert_uint_le(sum.inflated, (list_cases[_i].lim.max_inflated ?
	    list_cases[_i].lim.max_inflated : (size_t)64 << 20) + 65536);
	buf_free(&s.names);
	free(d);
}
END_TEST

/* The ELF's size is what was read, its type what its bytes say. */
START_TEST(test_list_sizes)
{
	struct attach_summary sum;
	struct seen s = { .stop_at = -1 };
	size_t len, elen;
	char *d = mk_zip_elf(&len), *elf = mk_elf(&elen);

	buf_init(&s.names);
	ck_assert_int_eq(attach_list(d, len, NULL, record, &s, &sum), ATTACH_OK);
	ck_assert_int_eq(s.size_of_true, (int64_t)elen);
	ck_assert_uint_eq(sum.entries, 2);
	ck_assert_uint_eq(sum.inflated, elen + strlen("Xem tệp đính kèm.\n"));
	buf_free(&s.names);
	free(d);
	free(elf);
}
END_TEST

START_TEST(test_list_stop)
{
	struct seen s = { .stop_at = 2 };
	size_t len;
	char *d = mk_nested(&len);

	buf_init(&s.names);
	ck_assert_int_eq(attach_list(d, len, NULL, record, &s, NULL), 7);
	ck_assert_str_eq(buf_cstr(&s.names), "1:a.txt:document;1:inner.zip:archive;");
	ck_assert_int_eq(attach_list(NULL, 0, NULL, record, &s, NULL), ATTACH_E_FORMAT);
	ck_assert_str_eq(attach_status_name(ATTACH_E_RATIO), "ratio");
	ck_assert_str_eq(attach_status_name(7), "stopped");
	ck_assert_str_eq(attach_category_name(ATTACH_SCRIPT), "script");
	buf_free(&s.names);
	free(d);
}
END_TEST

/*
 * A stamped DOCX inside a zip inside a zip: the document's whole content
 * comes with its entry, and doctext reads the stamp from it.
 */
static char *mk_zipped_docx(size_t *len)
{
	static const char ct[] = "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas."
		"openxmlformats.org/package/2006/content-types\"><Override PartName=\"/word/"
		"document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument."
		"wordprocessingml.document.main+xml\"/></Types>";
	static const char doc[] = "<?xml version=\"1.0\"?><w:document xmlns:w=\"http://"
		"schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body><w:p><w:r>"
		"<w:t>TỐI MẬT</w:t></w:r></w:p></w:body></w:document>";
	struct fx_file d[] = {
		{ .name = "[Content_Types].xml", .data = ct },
		{ .name = "word/document.xml", .data = doc },
	};
	size_t n1, n2;
	char *b1 = fx_archive(FX_ZIP, d, 2, NULL, NULL, &n1), *b2, *b3;
	struct fx_file in[] = { { .name = "bao_cao.docx", .data = b1, .len = n1 } };

	b2 = fx_archive(FX_ZIP, in, 1, NULL, NULL, &n2);
	{
		struct fx_file out[] = {
			{ .name = "ho_so.zip", .data = b2, .len = n2 },
			{ .name = "thu.txt", .data = "Kính gửi anh chị.\n" },
		};

		b3 = fx_archive(FX_ZIP, out, 2, NULL, NULL, len);
	}
	free(b1);
	free(b2);
	return b3;
}

struct docs {
	int read, stamped, text_kept, text_not_kept;
};

static void doc_text(void *arg, const char *utf8, size_t len)
{
	buf_append(arg, utf8, len);
}

/*
 * What the content check does with an entry: libmagic may call a DOCX
 * application/zip (its msooxml rule wants a particular layout), so an
 * archive's content is offered to doctext_kind_of as well as a
 * document's.
 */
static int read_documents(void *arg, const struct attach_entry *e)
{
	struct docs *d = arg;
	struct buf text;
	enum doctext_kind k;

	if (strcmp(e->name, "thu.txt") == 0) {
		ck_assert_int_eq(e->category, ATTACH_DOCUMENT);
		if (e->data != NULL)
			d->text_kept++;
		else
			d->text_not_kept++;
	}
	if (e->data == NULL)
		return 0;
	ck_assert_uint_eq(e->data_len, (size_t)e->size);
	ck_assert_int_eq(memcmp(e->data, e->head, e->head_len), 0);
	k = doctext_kind_of(e->data, e->data_len);
	if (k == DOCTEXT_NONE)
		return 0;
	d->read++;
	buf_init(&text);
	ck_assert_int_eq(doctext_extract(k, e->data, e->data_len, NULL, doc_text, &text),
	    DOCTEXT_OK);
	if (memmem(text.data, text.len, "TỐI MẬT", strlen("TỐI MẬT")) != NULL)
		d->stamped++;
	buf_free(&text);
	return 0;
}

START_TEST(test_list_documents)
{
	struct attach_limits small = { .max_document = 16 };
	struct docs d = { 0 };
	size_t len;
	char *z = mk_zipped_docx(&len);

	ck_assert_int_eq(attach_list(z, len, NULL, read_documents, &d, NULL), ATTACH_OK);
	ck_assert_int_eq(d.read, 1);
	ck_assert_int_eq(d.stamped, 1);
	ck_assert_int_eq(d.text_kept, 1);
	/* A document past max_document is listed without its content. */
	memset(&d, 0, sizeof d);
	ck_assert_int_eq(attach_list(z, len, &small, read_documents, &d, NULL), ATTACH_OK);
	ck_assert_int_eq(d.stamped, 1);
	ck_assert_int_eq(d.text_kept, 0);
	ck_assert_int_eq(d.text_not_kept, 1);
	free(z);
}
END_TEST

/*
 * zip { anh.jpg = zip { 30 customXml parts, setup.exe } }: libmagic takes
 * the inner zip for an Office file it cannot name (octet-stream), and its
 * name says photo; its signature says archive, and it is listed.
 */
static char *mk_padded_nested(size_t *len)
{
	struct fx_file f[31], outer[1];
	char names[30][32], *pe, *inner, *z;
	size_t plen, ilen, i;

	pe = mk_pe(&plen);
	for (i = 0; i < 30; i++) {
		snprintf(names[i], sizeof names[i], "customXml/item%zu.xml", i + 1);
		f[i] = (struct fx_file){ .name = names[i],
		    .data = "<item>a part of the package</item>" };
	}
	f[30] = (struct fx_file){ .name = "setup.exe", .data = pe, .len = plen };
	inner = fx_archive(FX_ZIP, f, 31, NULL, NULL, &ilen);
	outer[0] = (struct fx_file){ .name = "anh.jpg", .data = inner, .len = ilen };
	z = fx_archive(FX_ZIP, outer, 1, NULL, NULL, len);
	free(pe);
	free(inner);
	return z;
}

START_TEST(test_list_by_signature)
{
	struct attach_summary sum;
	struct seen s = { .stop_at = -1 };
	size_t len, ilen;
	char *z = mk_padded_nested(&len), mime[128];
	struct archive *a;
	struct archive_entry *e;
	char *inner;

	/* What libmagic makes of the inner zip, the premise of this test. */
	a = archive_read_new();
	archive_read_support_format_zip(a);
	ck_assert_int_eq(archive_read_open_memory(a, z, len), ARCHIVE_OK);
	ck_assert_int_eq(archive_read_next_header(a, &e), ARCHIVE_OK);
	ilen = (size_t)archive_entry_size(e);
	inner = xmalloc(ilen);
	ck_assert_int_eq(archive_read_data(a, inner, ilen), (la_ssize_t)ilen);
	archive_read_free(a);
	attach_type_of(inner, ilen, mime, sizeof mime);
	ck_assert_msg(strcmp(mime, "application/zip") != 0, "libmagic knows it: %s", mime);
	ck_assert(attach_listable(mime, inner, ilen));
	free(inner);

	buf_init(&s.names);
	ck_assert_int_eq(attach_list(z, len, NULL, record, &s, &sum), ATTACH_OK);
	ck_assert_msg(strstr(buf_cstr(&s.names), "2:setup.exe:executable;") != NULL, "%s",
	    buf_cstr(&s.names));
	ck_assert_int_eq(sum.worst, ATTACH_EXECUTABLE);
	ck_assert_uint_eq(sum.depth, 2);
	buf_free(&s.names);
	free(z);
}
END_TEST

START_TEST(test_listable)
{
	static const char pk[] = "PK\003\004rest";
	char tar[300];

	memset(tar, 0, sizeof tar);
	memcpy(tar + 257, "ustar", 5);
	ck_assert(attach_listable("application/zip", pk, 8));
	ck_assert(attach_listable("application/octet-stream", pk, 8));
	ck_assert(attach_listable(NULL, pk, 8));
	ck_assert(attach_listable("application/octet-stream", tar, sizeof tar));
	ck_assert(!attach_listable("application/octet-stream", tar, 261));
	/* A document is a zip too: read as one, not listed. */
	ck_assert(!attach_listable("application/vnd.openxmlformats-officedocument."
	    "wordprocessingml.document", pk, 8));
	ck_assert(!attach_listable("application/vnd.oasis.opendocument.text", pk, 8));
	ck_assert(!attach_listable("text/plain", "PK", 2));
	ck_assert(!attach_head_is_archive(NULL, 0));
	ck_assert(attach_head_is_archive("\x1f\x8b", 2));
	ck_assert(attach_head_is_pdf("junk\n%PDF-1.7", 14));
	ck_assert(!attach_head_is_pdf("%PDF", 4));
	ck_assert(!attach_head_is_pdf(NULL, 0));
}
END_TEST

/* One libmagic handle per thread: concurrent typing stays right. */
static void *type_many(void *arg)
{
	size_t plen;
	char *pe = mk_pe(&plen), mime[128];
	int i, *ok = arg;

	for (i = 0; i < 100; i++) {
		attach_type_of(i % 2 ? pe : "Kính gửi\n", i % 2 ? plen : 11, mime, sizeof mime);
		if (strcmp(mime, i % 2 ? "application/vnd.microsoft.portable-executable" :
		    "text/plain") == 0)
			(*ok)++;
	}
	free(pe);
	return NULL;
}

START_TEST(test_threads)
{
	pthread_t th[4];
	int ok[4] = { 0 }, i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, type_many, &ok[i]), 0);
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(ok[i], 100);
	}
}
END_TEST

static Suite *attach_suite(void)
{
	Suite *s = suite_create("attach");
	TCase *tc = tcase_create("all");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_type, 0, N_CASES(type_cases));
	tcase_add_test(tc, test_type_edges);
	tcase_add_loop_test(tc, test_classify, 0, N_CASES(class_cases));
	tcase_add_loop_test(tc, test_list, 0, N_CASES(list_cases));
	tcase_add_test(tc, test_list_sizes);
	tcase_add_test(tc, test_list_stop);
	tcase_add_test(tc, test_list_documents);
	tcase_add_test(tc, test_list_by_signature);
	tcase_add_test(tc, test_listable);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(attach_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
