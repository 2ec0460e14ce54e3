/*
 * attach: the type, the category and (for an archive) the contents of an
 * attachment, for the attachment rules of the content check.
 *
 * The type comes from the content, through libmagic (a sender names a
 * file and declares a Content-Type as they like). The category weighs
 * the type, the executable signatures of the first bytes and the file
 * name's extension, and keeps the most dangerous. Archives are listed
 * from memory with libarchive: every entry is read through (its real
 * size and the first bytes that type it; declared sizes lie), archives
 * inside are listed in turn, and every byte inflated counts against the
 * limits that stop decompression bombs.
 *
 * Entry points: attach_type_of(), attach_classify(),
 * attach_category_of_name(), attach_list() and the *_name() functions.
 *
 * OWNERSHIP: all arguments borrowed; entries handed to the callback live
 * until it returns.
 * THREADS: any thread. A magic_t is not thread-safe, and typing text
 * costs about 1 ms, so rather than one handle behind a mutex each thread
 * loads its own on first use (about 3 ms) and keeps it in a
 * thread-specific slot closed when the thread ends.
 * ERRORS: attach_status results; out of memory aborts (xmalloc).
 */
#include "config.h"

#include "policy/attach.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/xmalloc.h"

#define ATTACH_TYPE_MAX ((size_t)64 << 10)
#define ATTACH_DEF_ENTRIES 10000
#define ATTACH_DEF_INFLATED ((size_t)64 << 20)
#define ATTACH_DEF_RATIO 100u
#define ATTACH_DEF_DEPTH 3u
#define ATTACH_DEF_HEAD 4096
#define ATTACH_DEF_TIMEOUT_MS 5000u
#define ATTACH_DEF_DOCUMENT ((size_t)16 << 20)
/* Small archives of text inflate well past any sane ratio: 1 MiB first. */
#define ATTACH_RATIO_FLOOR ((uint64_t)1 << 20)
#define ATTACH_CHUNK 65536
#define ATTACH_OCTET "application/octet-stream"

/* ------------------------------------------------------------ names */

const char *attach_category_name(enum attach_category cat)
{
	switch (cat) {
	case ATTACH_OTHER: return "other";
	case ATTACH_DOCUMENT: return "document";
	case ATTACH_ARCHIVE: return "archive";
	case ATTACH_SCRIPT: return "script";
	case ATTACH_EXECUTABLE: return "executable";
	}
	return "other";
}

const char *attach_status_name(int status)
{
	switch (status) {
	case ATTACH_OK: return "ok";
	case ATTACH_E_FORMAT: return "format";
	case ATTACH_E_ENTRIES: return "entries";
	case ATTACH_E_INFLATED: return "inflated";
	case ATTACH_E_RATIO: return "ratio";
	case ATTACH_E_DEPTH: return "depth";
	case ATTACH_E_TIMEOUT: return "timeout";
	}
	return "stopped";
}

/* ------------------------------------------------------------ libmagic */

static pthread_key_t attach_magic_key;
static pthread_once_t attach_magic_once = PTHREAD_ONCE_INIT;

static void attach_magic_close(void *m)
{
	magic_close(m);
}

static void attach_magic_key_init(void)
{
	if (pthread_key_create(&attach_magic_key, attach_magic_close) != 0)
		abort();
}

/*
 * This thread's handle, loaded from the system database on first use.
 * MAGIC_MIME_TYPE only: no MAGIC_COMPRESS, so libmagic never
 * decompresses what it is shown (archives are libarchive's job, bounded).
 */
static magic_t attach_magic(void)
{
	magic_t m;

	pthread_once(&attach_magic_once, attach_magic_key_init);
	m = pthread_getspecific(attach_magic_key);
	if (m != NULL)
		return m;
	m = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS);
	if (m == NULL)
		return NULL;
	if (magic_load(m, NULL) != 0 || pthread_setspecific(attach_magic_key, m) != 0) {
		magic_close(m);
		return NULL;
	}
	return m;
}

int attach_type_of(const char *data, size_t len, char *out, size_t outlen)
{
	magic_t m;
	const char *t = NULL;

	if (out == NULL || outlen == 0 || (data == NULL && len > 0))
		return -EINVAL;
	if (len > ATTACH_TYPE_MAX)
		len = ATTACH_TYPE_MAX;
	m = attach_magic();
	if (m != NULL)
		t = magic_buffer(m, data != NULL ? data : "", len);
	snprintf(out, outlen, "%s", t != NULL ? t : ATTACH_OCTET);
	return 0;
}

/* ------------------------------------------------------------ categories */

/*
 * Extensions, lower case. EXECUTABLE: what Windows, macOS, Linux or
 * Android runs (or installs, or hands to an interpreter) when the user
 * opens it, the classic carriers of mail-borne malware:
 *  - native code and installers: exe dll scr com pif cpl ocx sys drv msi
 *    msp mst appx appxbundle msix msixbundle xll (an Excel add-in is a
 *    DLL) elf bin run deb rpm pkg mpkg dmg-less app bundles (not files);
 *  - Windows Script Host and shell: bat cmd vbs vbe js jse wsf wsh ws
 *    hta sct ps1 psm1 msc (MMC runs snap-ins) chm (compiled help runs
 *    script) inf reg (imports into the registry) sh command (macOS
 *    Terminal runs it);
 *  - shortcuts that start programs: lnk url scf pif library-ms
 *    settingcontent-ms;
 *  - Java and mobile packages: jar jnlp class apk xapk ipa.
 * SCRIPT: source an interpreter runs when the user starts it explicitly
 * (py pl rb php lua tcl awk bash zsh ksh csh applescript scpt).
 * ARCHIVE: what attach_list reads, and disk images a double click mounts
 * (iso img vhd vhdx dmg), whose contents escape per-file checks.
 * DOCUMENT: PDF, the office formats (macro-enabled ones too: their
 * macros are a document's, not the file's) and text.
 */
static const struct {
	const char *ext;
	enum attach_category cat;
} attach_exts[] = {
	{ "exe", ATTACH_EXECUTABLE }, { "dll", ATTACH_EXECUTABLE },
	{ "scr", ATTACH_EXECUTABLE }, { "com", ATTACH_EXECUTABLE },
	{ "pif", ATTACH_EXECUTABLE }, { "cpl", ATTACH_EXECUTABLE },
	{ "ocx", ATTACH_EXECUTABLE }, { "sys", ATTACH_EXECUTABLE },
	{ "drv", ATTACH_EXECUTABLE }, { "msi", ATTACH_EXECUTABLE },
	{ "msp", ATTACH_EXECUTABLE }, { "mst", ATTACH_EXECUTABLE },
	{ "appx", ATTACH_EXECUTABLE }, { "appxbundle", ATTACH_EXECUTABLE },
	{ "msix", ATTACH_EXECUTABLE }, { "msixbundle", ATTACH_EXECUTABLE },
	{ "xll", ATTACH_EXECUTABLE }, { "elf", ATTACH_EXECUTABLE },
	{ "bin", ATTACH_EXECUTABLE }, { "run", ATTACH_EXECUTABLE },
	{ "deb", ATTACH_EXECUTABLE }, { "rpm", ATTACH_EXECUTABLE },
	{ "pkg", ATTACH_EXECUTABLE }, { "mpkg", ATTACH_EXECUTABLE },
	{ "bat", ATTACH_EXECUTABLE }, { "cmd", ATTACH_EXECUTABLE },
	{ "vbs", ATTACH_EXECUTABLE }, { "vbe", ATTACH_EXECUTABLE },
	{ "js", ATTACH_EXECUTABLE }, { "jse", ATTACH_EXECUTABLE },
	{ "wsf", ATTACH_EXECUTABLE }, { "wsh", ATTACH_EXECUTABLE },
	{ "ws", ATTACH_EXECUTABLE }, { "hta", ATTACH_EXECUTABLE },
	{ "sct", ATTACH_EXECUTABLE }, { "ps1", ATTACH_EXECUTABLE },
	{ "psm1", ATTACH_EXECUTABLE }, { "msc", ATTACH_EXECUTABLE },
	{ "chm", ATTACH_EXECUTABLE }, { "inf", ATTACH_EXECUTABLE },
	{ "reg", ATTACH_EXECUTABLE }, { "sh", ATTACH_EXECUTABLE },
	{ "command", ATTACH_EXECUTABLE }, { "lnk", ATTACH_EXECUTABLE },
	{ "url", ATTACH_EXECUTABLE }, { "scf", ATTACH_EXECUTABLE },
	{ "library-ms", ATTACH_EXECUTABLE }, { "settingcontent-ms", ATTACH_EXECUTABLE },
	{ "jar", ATTACH_EXECUTABLE }, { "jnlp", ATTACH_EXECUTABLE },
	{ "class", ATTACH_EXECUTABLE }, { "apk", ATTACH_EXECUTABLE },
	{ "xapk", ATTACH_EXECUTABLE }, { "ipa", ATTACH_EXECUTABLE },
	{ "py", ATTACH_SCRIPT }, { "pl", ATTACH_SCRIPT }, { "rb", ATTACH_SCRIPT },
	{ "php", ATTACH_SCRIPT }, { "lua", ATTACH_SCRIPT }, { "tcl", ATTACH_SCRIPT },
	{ "awk", ATTACH_SCRIPT }, { "bash", ATTACH_SCRIPT }, { "zsh", ATTACH_SCRIPT },
	{ "ksh", ATTACH_SCRIPT }, { "csh", ATTACH_SCRIPT },
	{ "applescript", ATTACH_SCRIPT }, { "scpt", ATTACH_SCRIPT },
	{ "zip", ATTACH_ARCHIVE }, { "7z", ATTACH_ARCHIVE }, { "rar", ATTACH_ARCHIVE },
	{ "tar", ATTACH_ARCHIVE }, { "gz", ATTACH_ARCHIVE }, { "tgz", ATTACH_ARCHIVE },
	{ "bz2", ATTACH_ARCHIVE }, { "tbz", ATTACH_ARCHIVE }, { "tbz2", ATTACH_ARCHIVE },
	{ "xz", ATTACH_ARCHIVE }, { "txz", ATTACH_ARCHIVE }, { "lz", ATTACH_ARCHIVE },
	{ "lzma", ATTACH_ARCHIVE }, { "tlz", ATTACH_ARCHIVE }, { "zst", ATTACH_ARCHIVE },
	{ "lz4", ATTACH_ARCHIVE }, { "z", ATTACH_ARCHIVE }, { "cab", ATTACH_ARCHIVE },
	{ "cpio", ATTACH_ARCHIVE }, { "ar", ATTACH_ARCHIVE }, { "arj", ATTACH_ARCHIVE },
	{ "lzh", ATTACH_ARCHIVE }, { "lha", ATTACH_ARCHIVE }, { "ace", ATTACH_ARCHIVE },
	{ "xar", ATTACH_ARCHIVE }, { "iso", ATTACH_ARCHIVE }, { "img", ATTACH_ARCHIVE },
	{ "vhd", ATTACH_ARCHIVE }, { "vhdx", ATTACH_ARCHIVE }, { "dmg", ATTACH_ARCHIVE },
	{ "pdf", ATTACH_DOCUMENT }, { "doc", ATTACH_DOCUMENT }, { "docx", ATTACH_DOCUMENT },
	{ "docm", ATTACH_DOCUMENT }, { "dot", ATTACH_DOCUMENT }, { "dotx", ATTACH_DOCUMENT },
	{ "dotm", ATTACH_DOCUMENT }, { "xls", ATTACH_DOCUMENT }, { "xlsx", ATTACH_DOCUMENT },
	{ "xlsm", ATTACH_DOCUMENT }, { "xlsb", ATTACH_DOCUMENT }, { "ppt", ATTACH_DOCUMENT },
	{ "pptx", ATTACH_DOCUMENT }, { "pptm", ATTACH_DOCUMENT }, { "pps", ATTACH_DOCUMENT },
	{ "ppsx", ATTACH_DOCUMENT }, { "odt", ATTACH_DOCUMENT }, { "ods", ATTACH_DOCUMENT },
	{ "odp", ATTACH_DOCUMENT }, { "odg", ATTACH_DOCUMENT }, { "rtf", ATTACH_DOCUMENT },
	{ "txt", ATTACH_DOCUMENT }, { "csv", ATTACH_DOCUMENT },
};

/*
 * Media types by content. Prefix matches where a family shares one
 * (every OOXML and ODF type is a document).
 */
static const struct {
	const char *type;
	bool prefix;
	enum attach_category cat;
} attach_types[] = {
	{ "application/x-dosexec", false, ATTACH_EXECUTABLE },
	{ "application/vnd.microsoft.portable-executable", false, ATTACH_EXECUTABLE },
	{ "application/x-msdownload", false, ATTACH_EXECUTABLE },
	{ "application/x-ms-ne-executable", false, ATTACH_EXECUTABLE },
	{ "application/x-executable", false, ATTACH_EXECUTABLE },
	{ "application/x-pie-executable", false, ATTACH_EXECUTABLE },
	{ "application/x-sharedlib", false, ATTACH_EXECUTABLE },
	{ "application/x-mach-binary", false, ATTACH_EXECUTABLE },
	{ "application/x-msi", false, ATTACH_EXECUTABLE },
	{ "application/x-ms-installer", false, ATTACH_EXECUTABLE },
	{ "application/x-ms-shortcut", false, ATTACH_EXECUTABLE },
	{ "application/java-archive", false, ATTACH_EXECUTABLE },
	{ "application/x-java-archive", false, ATTACH_EXECUTABLE },
	{ "application/x-java-applet", false, ATTACH_EXECUTABLE },
	{ "application/vnd.android.package-archive", false, ATTACH_EXECUTABLE },
	{ "application/vnd.debian.binary-package", false, ATTACH_EXECUTABLE },
	{ "application/x-rpm", false, ATTACH_EXECUTABLE },
	{ "text/x-msdos-batch", false, ATTACH_EXECUTABLE },
	{ "text/x-python", false, ATTACH_SCRIPT },
	{ "text/x-script.python", false, ATTACH_SCRIPT },
	{ "text/x-perl", false, ATTACH_SCRIPT },
	{ "text/x-ruby", false, ATTACH_SCRIPT },
	{ "text/x-php", false, ATTACH_SCRIPT },
	{ "application/x-php", false, ATTACH_SCRIPT },
	{ "text/x-lua", false, ATTACH_SCRIPT },
	{ "text/x-tcl", false, ATTACH_SCRIPT },
	{ "text/x-awk", false, ATTACH_SCRIPT },
	{ "application/zip", false, ATTACH_ARCHIVE },
	{ "application/x-7z-compressed", false, ATTACH_ARCHIVE },
	{ "application/x-rar", false, ATTACH_ARCHIVE },
	{ "application/vnd.rar", false, ATTACH_ARCHIVE },
	{ "application/x-tar", false, ATTACH_ARCHIVE },
	{ "application/gzip", false, ATTACH_ARCHIVE },
	{ "application/x-gzip", false, ATTACH_ARCHIVE },
	{ "application/x-bzip2", false, ATTACH_ARCHIVE },
	{ "application/x-xz", false, ATTACH_ARCHIVE },
	{ "application/x-lzma", false, ATTACH_ARCHIVE },
	{ "application/x-lzip", false, ATTACH_ARCHIVE },
	{ "application/zstd", false, ATTACH_ARCHIVE },
	{ "application/x-zstd", false, ATTACH_ARCHIVE },
	{ "application/x-lz4", false, ATTACH_ARCHIVE },
	{ "application/x-compress", false, ATTACH_ARCHIVE },
	{ "application/vnd.ms-cab-compressed", false, ATTACH_ARCHIVE },
	{ "application/x-iso9660-image", false, ATTACH_ARCHIVE },
	{ "application/x-cpio", false, ATTACH_ARCHIVE },
	{ "application/x-archive", false, ATTACH_ARCHIVE },
	{ "application/x-lha", false, ATTACH_ARCHIVE },
	{ "application/x-lzh-compressed", false, ATTACH_ARCHIVE },
	{ "application/x-xar", false, ATTACH_ARCHIVE },
	{ "application/x-arj", false, ATTACH_ARCHIVE },
	{ "application/pdf", false, ATTACH_DOCUMENT },
	{ "application/msword", false, ATTACH_DOCUMENT },
	{ "application/vnd.ms-excel", false, ATTACH_DOCUMENT },
	{ "application/vnd.ms-powerpoint", false, ATTACH_DOCUMENT },
	{ "application/vnd.openxmlformats-officedocument.", true, ATTACH_DOCUMENT },
	{ "application/vnd.oasis.opendocument.", true, ATTACH_DOCUMENT },
	{ "application/rtf", false, ATTACH_DOCUMENT },
	{ "text/rtf", false, ATTACH_DOCUMENT },
	{ "text/plain", false, ATTACH_DOCUMENT },
	{ "text/csv", false, ATTACH_DOCUMENT },
};

/* The last component of a name, with Windows' trailing dots and spaces off. */
static const char *attach_ext(const char *name, char *ext, size_t extlen)
{
	const char *base = name, *p, *dot = NULL, *end;
	size_t n;

	for (p = name; *p != '\0'; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	end = p;
	while (end > base && (end[-1] == '.' || end[-1] == ' '))
		end--;
	for (p = base; p < end; p++)
		if (*p == '.')
			dot = p;
	if (dot == NULL || (size_t)(end - dot - 1) >= extlen)
		return NULL;
	n = (size_t)(end - dot - 1);
	memcpy(ext, dot + 1, n);
	ext[n] = '\0';
	return ext;
}

enum attach_category attach_category_of_name(const char *filename)
{
	char ext[32];
	size_t i;

	if (filename == NULL || attach_ext(filename, ext, sizeof ext) == NULL)
		return ATTACH_OTHER;
	for (i = 0; i < sizeof attach_exts / sizeof attach_exts[0]; i++)
		if (strcasecmp(ext, attach_exts[i].ext) == 0)
			return attach_exts[i].cat;
	return ATTACH_OTHER;
}

/*
 * Executable signatures in the first bytes, whatever libmagic calls
 * them: MZ (DOS and PE, PE/COFF spec §2), ELF (\177ELF), Mach-O thin
 * (FEEDFACE/FEEDFACF, either byte order) and fat/Java class (CAFEBABE),
 * a Windows shell link (MS-SHLLINK §2.1: header size 0x4C and its CLSID
 * start), and "#!" for a script.
 */
static enum attach_category attach_category_of_head(const unsigned char *p, size_t n)
{
	static const unsigned char macho[][4] = {
		{ 0xFE, 0xED, 0xFA, 0xCE }, { 0xFE, 0xED, 0xFA, 0xCF },
		{ 0xCE, 0xFA, 0xED, 0xFE }, { 0xCF, 0xFA, 0xED, 0xFE },
		{ 0xCA, 0xFE, 0xBA, 0xBE },
	};
	size_t i;

	if (n >= 2 && p[0] == 'M' && p[1] == 'Z')
		return ATTACH_EXECUTABLE;
	if (n >= 4 && memcmp(p, "\177ELF", 4) == 0)
		return ATTACH_EXECUTABLE;
	for (i = 0; n >= 4 && i < sizeof macho / sizeof macho[0]; i++)
		if (memcmp(p, macho[i], 4) == 0)
			return ATTACH_EXECUTABLE;
	if (n >= 8 && memcmp(p, "\x4C\0\0\0\x01\x14\x02\0", 8) == 0)
		return ATTACH_EXECUTABLE;
	if (n >= 2 && p[0] == '#' && p[1] == '!')
		return ATTACH_SCRIPT;
	return ATTACH_OTHER;
}

static enum attach_category attach_category_of_type(const char *mime)
{
	size_t i, n;

	if (mime == NULL)
		return ATTACH_OTHER;
	for (i = 0; i < sizeof attach_types / sizeof attach_types[0]; i++) {
		n = strlen(attach_types[i].type);
		if (attach_types[i].prefix ? strncasecmp(mime, attach_types[i].type, n) == 0 :
		    strcasecmp(mime, attach_types[i].type) == 0)
			return attach_types[i].cat;
	}
	/* text/x-shellscript, application/javascript, text/x-python ... */
	if (strstr(mime, "script") != NULL)
		return ATTACH_SCRIPT;
	return ATTACH_OTHER;
}

bool attach_head_is_archive(const char *head, size_t head_len)
{
	static const struct {
		const char *magic;
		size_t len;
		size_t at;
	} kinds[] = {
		{ "PK\x03\x04", 4, 0 },             /* zip: archives, OOXML, ODF */
		{ "PK\x05\x06", 4, 0 },             /* an empty zip */
		{ "7z\xbc\xaf\x27\x1c", 6, 0 },
		{ "Rar!\x1a\x07", 6, 0 },
		{ "\x1f\x8b", 2, 0 },               /* gzip */
		{ "BZh", 3, 0 },
		{ "\xfd" "7zXZ\x00", 6, 0 },
		{ "\x28\xb5\x2f\xfd", 4, 0 },       /* zstd */
		{ "MSCF", 4, 0 },                   /* cab */
		{ "ustar", 5, 257 },                /* tar */
	};

	if (head == NULL)
		return false;
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (head_len >= kinds[i].at + kinds[i].len &&
		    memcmp(head + kinds[i].at, kinds[i].magic, kinds[i].len) == 0)
			return true;
	return false;
}

bool attach_head_is_pdf(const char *head, size_t head_len)
{
	return head != NULL && memmem(head, head_len < 1024 ? head_len : 1024, "%PDF-", 5) != NULL;
}

bool attach_listable(const char *mime, const char *head, size_t head_len)
{
	enum attach_category by_type = attach_category_of_type(mime);

	return by_type == ATTACH_ARCHIVE ||
	    (by_type != ATTACH_DOCUMENT && attach_head_is_archive(head, head_len));
}

static enum attach_category attach_worse(enum attach_category a, enum attach_category b)
{
	return a > b ? a : b;
}

enum attach_category attach_classify(const char *mime, const char *head,
    size_t head_len, const char *filename)
{
	enum attach_category c = attach_category_of_type(mime);

	if (head != NULL)
		c = attach_worse(c, attach_category_of_head((const unsigned char *)head, head_len));
	return attach_worse(c, attach_category_of_name(filename));
}

/* ------------------------------------------------------------ archives */

/* One listing: its limits, what is spent, and the first failure. */
struct attach_walk {
	struct attach_limits lim;
	struct timespec deadline;
	size_t top_len;
	attach_entry_cb *cb;
	void *arg;
	struct attach_summary *sum;
	char *chunk;     /* scratch for the bytes read past the head */
	int status;
};

static int attach_fail(struct attach_walk *w, int status)
{
	if (w->status == ATTACH_OK)
		w->status = status;
	return w->status;
}

static bool attach_in_time(struct attach_walk *w)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > w->deadline.tv_sec || (now.tv_sec == w->deadline.tv_sec &&
	    now.tv_nsec >= w->deadline.tv_nsec)) {
		attach_fail(w, ATTACH_E_TIMEOUT);
		return false;
	}
	return w->status == ATTACH_OK;
}

/* n more bytes inflated: within the total and the ratio? */
static bool attach_count(struct attach_walk *w, uint64_t n)
{
	w->sum->inflated += n;
	if (w->sum->inflated > w->lim.max_inflated)
		return attach_fail(w, ATTACH_E_INFLATED), false;
	if (w->sum->inflated > ATTACH_RATIO_FLOOR &&
	    w->sum->inflated / w->lim.max_ratio > w->top_len)
		return attach_fail(w, ATTACH_E_RATIO), false;
	return true;
}

/*
 * The decompression filters. libarchive falls back to running an
 * external program (gzip -d, xz -d, ...) for a filter whose library it
 * was built without, and says so with ARCHIVE_WARN: such a filter is left
 * out (no process is ever started for a message). Probed once.
 */
static int (*const attach_filters[])(struct archive *) = {
	archive_read_support_filter_gzip, archive_read_support_filter_bzip2,
	archive_read_support_filter_xz, archive_read_support_filter_lzma,
	archive_read_support_filter_lzip, archive_read_support_filter_zstd,
	archive_read_support_filter_lz4, archive_read_support_filter_compress,
};
#define ATTACH_NFILTERS (sizeof attach_filters / sizeof attach_filters[0])
static bool attach_filter_ok[ATTACH_NFILTERS];
static pthread_once_t attach_filter_once = PTHREAD_ONCE_INIT;

static void attach_filter_probe(void)
{
	size_t i;

	for (i = 0; i < ATTACH_NFILTERS; i++) {
		struct archive *a = archive_read_new();

		attach_filter_ok[i] = attach_filters[i](a) == ARCHIVE_OK;
		archive_read_free(a);
	}
}

/*
 * Formats named one by one rather than archive_read_support_format_all():
 * that would add mtree (whose entries may name files on our disk to
 * read), warc and raw; filter_all would add lrzip, lzop and grzip, which
 * only ever run as external programs.
 */
static struct archive *attach_open(const char *data, size_t len, bool raw)
{
	struct archive *a = archive_read_new();
	size_t i;

	if (raw) {
		archive_read_support_format_raw(a);
	} else {
		archive_read_support_format_zip(a);
		archive_read_support_format_7zip(a);
		archive_read_support_format_rar(a);
		archive_read_support_format_rar5(a);
		archive_read_support_format_tar(a);
		archive_read_support_format_cpio(a);
		archive_read_support_format_ar(a);
		archive_read_support_format_cab(a);
		archive_read_support_format_lha(a);
		archive_read_support_format_iso9660(a);
		archive_read_support_format_xar(a);
	}
	pthread_once(&attach_filter_once, attach_filter_probe);
	for (i = 0; i < ATTACH_NFILTERS; i++)
		if (attach_filter_ok[i])
			attach_filters[i](a);
	if (archive_read_open_memory(a, data, len) != ARCHIVE_OK ||
	    (raw && archive_filter_count(a) < 2)) {
		/* raw accepts anything: only a compressed single file is ours. */
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/*
 * Reads up to the head's size of the current entry into head. Returns
 * the bytes read (fewer at the end of the entry), or -1 (w->status says
 * why). Every byte counts against the limits.
 */
static int64_t attach_read_head(struct attach_walk *w, struct archive *a, char *head)
{
	size_t have = 0;
	la_ssize_t n = 1;

	while (have < w->lim.head_bytes && n > 0) {
		n = archive_read_data(a, head + have, w->lim.head_bytes - have);
		if (n < 0)
			return attach_fail(w, ATTACH_E_FORMAT), -1;
		if (!attach_count(w, (uint64_t)n))
			return -1;
		have += (size_t)n;
	}
	return (int64_t)have;
}

/*
 * Reads the rest of the current entry, kept in whole while it stays
 * within keep bytes (past that whole is emptied and the rest thrown
 * away; keep 0: nothing kept). Returns the bytes read, or -1.
 */
static int64_t attach_read_rest(struct attach_walk *w, struct archive *a, struct buf *whole,
    size_t keep)
{
	int64_t total = 0;
	la_ssize_t n;

	while (attach_in_time(w)) {
		n = archive_read_data(a, w->chunk, ATTACH_CHUNK);
		if (n == 0)
			return total;
		if (n < 0)
			return attach_fail(w, ATTACH_E_FORMAT), -1;
		if (!attach_count(w, (uint64_t)n))
			return -1;
		if (keep > 0 && (size_t)n > keep - whole->len) {
			buf_free(whole);
			keep = 0;
		}
		if (keep > 0)
			buf_append(whole, w->chunk, (size_t)n);
		total += n;
	}
	return -1;
}

static int attach_walk_mem(struct attach_walk *w, const char *data, size_t len,
    unsigned depth);

/* One entry: read it, type it, hand it over, and list it if an archive. */
static void attach_entry_one(struct attach_walk *w, struct archive *a,
    struct archive_entry *ae, unsigned depth, char *head)
{
	struct attach_entry e;
	char mime[128];
	struct buf whole;
	bool nested = false, document;
	int64_t n, rest;
	size_t keep;
	int ret;

	memset(&e, 0, sizeof e);
	e.name = archive_entry_pathname(ae) != NULL ? archive_entry_pathname(ae) : "";
	e.depth = depth;
	e.head = head;
	e.size = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : -1;
	e.encrypted = archive_entry_is_encrypted(ae) != 0;
	if (++w->sum->entries > w->lim.max_entries) {
		attach_fail(w, ATTACH_E_ENTRIES);
		return;
	}
	/* A declared size past the budget is refused before inflating it. */
	if (e.size > 0 && (uint64_t)e.size > w->lim.max_inflated - w->sum->inflated) {
		attach_fail(w, ATTACH_E_INFLATED);
		return;
	}
	mime[0] = '\0';
	buf_init(&whole);
	if (e.encrypted) {
		w->sum->encrypted = true;
	} else {
		if ((n = attach_read_head(w, a, head)) < 0)
			goto out;
		e.head_len = (size_t)n;
		attach_type_of(head, e.head_len, mime, sizeof mime);
		/*
		 * A nested archive is kept whole to be listed in turn (the
		 * inflate limit bounds it), a document for the caller's text
		 * checks (within max_document): a document by its type, its
		 * name, or a PDF's header, whatever libmagic calls it.
		 */
		nested = attach_listable(mime, head, e.head_len);
		document = attach_category_of_type(mime) == ATTACH_DOCUMENT ||
		    attach_category_of_name(e.name) == ATTACH_DOCUMENT ||
		    attach_head_is_pdf(head, e.head_len);
		keep = nested ? w->lim.max_inflated : document ? w->lim.max_document : 0;
		if (keep >= e.head_len && keep > 0)
			buf_append(&whole, head, e.head_len);
		else
			keep = 0;
		if ((rest = attach_read_rest(w, a, &whole, keep)) < 0)
			goto out;
		e.size = n + rest;
		e.data = whole.len == (size_t)e.size ? whole.data : NULL;
		e.data_len = e.data != NULL ? whole.len : 0;
		nested = nested && e.data != NULL;
	}
	e.mime = mime;
	e.category = attach_classify(e.encrypted ? NULL : mime, e.encrypted ? NULL : head,
	    e.head_len, e.name);
	w->sum->worst = attach_worse(w->sum->worst, e.category);
	if (w->cb != NULL && (ret = w->cb(w->arg, &e)) != 0) {
		attach_fail(w, ret);
		goto out;
	}
	if (nested && depth >= w->lim.max_depth)
		attach_fail(w, ATTACH_E_DEPTH);
	else if (nested)
		attach_walk_mem(w, whole.data, whole.len, depth + 1);
out:
	buf_free(&whole);
}

/*
 * Lists the entries of one opened archive. Returns how many were
 * listed, directories included.
 */
static size_t attach_walk_entries(struct attach_walk *w, struct archive *a, unsigned depth)
{
	struct archive_entry *ae;
	char *head = xmalloc(w->lim.head_bytes);
	size_t n = 0;
	int ret;

	while (attach_in_time(w)) {
		ret = archive_read_next_header(a, &ae);
		if (ret == ARCHIVE_EOF)
			break;
		if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN) {
			/* 7z with encrypted names: nothing can be listed. */
			if (archive_read_has_encrypted_entries(a) > 0)
				w->sum->encrypted = true;
			else
				attach_fail(w, ATTACH_E_FORMAT);
			break;
		}
		n++;
		if (archive_entry_filetype(ae) != AE_IFDIR)
			attach_entry_one(w, a, ae, depth, head);
	}
	free(head);
	return n;
}

static void attach_walk_depth(struct attach_walk *w, unsigned depth)
{
	if (depth > w->sum->depth)
		w->sum->depth = depth;
}

/*
 * Lists one archive in memory at a depth. What no archive format reads
 * may still be a single compressed file (a .gz of a document), listed as
 * one entry. So is a compressed stream that reads as an empty archive:
 * gzip'd zeros are a tar holding only its end-of-archive blocks, and
 * gunzip would still inflate every byte of it (the classic gzip bomb).
 */
static int attach_walk_mem(struct attach_walk *w, const char *data, size_t len,
    unsigned depth)
{
	struct archive *a = attach_open(data, len, false);

	if (a != NULL) {
		bool compressed = archive_filter_count(a) > 1;

		attach_walk_depth(w, depth);
		if (attach_walk_entries(w, a, depth) > 0 || !compressed || w->status != ATTACH_OK) {
			archive_read_free(a);
			return w->status;
		}
		archive_read_free(a);
	}
	a = attach_open(data, len, true);
	if (a == NULL)
		return attach_fail(w, ATTACH_E_FORMAT);
	attach_walk_depth(w, depth);
	attach_walk_entries(w, a, depth);
	archive_read_free(a);
	return w->status;
}

int attach_list(const char *data, size_t len, const struct attach_limits *limits,
    attach_entry_cb *cb, void *arg, struct attach_summary *sum)
{
	struct attach_summary dummy;
	struct attach_walk w;
	unsigned ms;

	memset(&w, 0, sizeof w);
	if (limits != NULL)
		w.lim = *limits;
	if (w.lim.max_entries == 0)
		w.lim.max_entries = ATTACH_DEF_ENTRIES;
	if (w.lim.max_inflated == 0)
		w.lim.max_inflated = ATTACH_DEF_INFLATED;
	if (w.lim.max_ratio == 0)
		w.lim.max_ratio = ATTACH_DEF_RATIO;
	if (w.lim.max_depth == 0)
		w.lim.max_depth = ATTACH_DEF_DEPTH;
	if (w.lim.head_bytes == 0)
		w.lim.head_bytes = ATTACH_DEF_HEAD;
	if (w.lim.max_document == 0)
		w.lim.max_document = ATTACH_DEF_DOCUMENT;
	ms = w.lim.timeout_ms != 0 ? w.lim.timeout_ms : ATTACH_DEF_TIMEOUT_MS;
	clock_gettime(CLOCK_MONOTONIC, &w.deadline);
	w.deadline.tv_sec += ms / 1000;
	w.deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (w.deadline.tv_nsec >= 1000000000L) {
		w.deadline.tv_sec++;
		w.deadline.tv_nsec -= 1000000000L;
	}
	w.top_len = len;
	w.cb = cb;
	w.arg = arg;
	w.sum = sum != NULL ? sum : &dummy;
	memset(w.sum, 0, sizeof *w.sum);
	if (data == NULL || len == 0)
		return ATTACH_E_FORMAT;
	w.chunk = xmalloc(ATTACH_CHUNK);
	attach_walk_mem(&w, data, len, 1);
	free(w.chunk);
	return w.status;
}
