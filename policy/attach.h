#ifndef GOVRELAY_POLICY_ATTACH_H
#define GOVRELAY_POLICY_ATTACH_H
/*
 * attach: what an attachment is and what is inside it, for the
 * attachment rules. Its type by content (libmagic, never the declared
 * Content-Type), a category from that type and the file name, and, for
 * an archive, the list of its entries read from memory with libarchive
 * (names, sizes, types by the first bytes of each entry, encryption),
 * nested archives walked to a depth limit. Nothing is written to disk.
 * Bounded: entries, bytes inflated, the inflation ratio, nesting depth
 * and wall time each have a limit, and crossing one is a distinct result
 * the caller can refuse on, never a crash or a hang.
 *
 * OWNERSHIP: every argument is borrowed for the call; what a callback is
 * handed is valid only until it returns.
 * THREADS: any thread (the thread pool: CPU-heavy). libmagic handles are
 * not thread-safe: each thread loads its own on first use and keeps it
 * until the thread ends (about 3 ms to load the system database; typing
 * costs 0.03 ms for a binary head, about 1 ms for 4 KiB of text).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * From most to least dangerous: when the type and the name disagree the
 * more dangerous category wins (a ".pdf" that is a PE file is an
 * executable; an ".exe" that is text is still an executable).
 */
enum attach_category {
	ATTACH_OTHER = 0,      /* anything else (images, plain data) */
	ATTACH_DOCUMENT,       /* PDF, office documents, RTF, plain text */
	ATTACH_ARCHIVE,        /* zip, 7z, rar, tar, compressed files, cab, iso */
	ATTACH_SCRIPT,         /* source for an interpreter the user must start */
	ATTACH_EXECUTABLE,     /* native code, or what the OS runs when opened */
};
const char *attach_category_name(enum attach_category cat);

/*
 * The media type of data by its content, like "application/zip",
 * written into out (truncated to outlen - 1 bytes, always terminated).
 * Only the first 64 KiB are looked at. "application/octet-stream" when
 * libmagic cannot tell or cannot be loaded. Returns 0, or -EINVAL.
 */
int attach_type_of(const char *data, size_t len, char *out, size_t outlen);

/*
 * The category of an attachment from its type by content (mime, as
 * attach_type_of gives it; NULL: unknown), its first bytes (head, for the
 * executable signatures libmagic may name otherwise; NULL allowed) and
 * its file name (NULL allowed; only the part after the last '/' or '\\'
 * counts, and trailing dots and spaces are ignored, as Windows does).
 */
enum attach_category attach_classify(const char *mime, const char *head,
    size_t head_len, const char *filename);

/*
 * Does head (an entry's or an attachment's first bytes) carry the
 * signature of an archive format attach_list reads (zip, 7z, rar, gzip,
 * bzip2, xz, zstd, cab, tar)?
 */
bool attach_head_is_archive(const char *head, size_t head_len);

/* A PDF header in the first kilobyte, where readers look for it (ISO 32000-1 §7.5.2). */
bool attach_head_is_pdf(const char *head, size_t head_len);

/*
 * Is it to be listed as an archive: libmagic calls it one, or its first
 * bytes are an archive's and libmagic does not call it a document (a DOCX
 * is a zip; a zip laid out so that libmagic takes it for an Office file
 * it cannot name is "application/octet-stream", and is still listed).
 */
bool attach_listable(const char *mime, const char *head, size_t head_len);

/* The category a file name alone gives (its extension, case-insensitive). */
enum attach_category attach_category_of_name(const char *filename);

struct attach_limits {
	size_t max_entries;   /* entries listed, nested ones included; 0: 10000 */
	size_t max_inflated;  /* bytes decompressed in all (declared sizes count
	                       * too, whichever is larger); 0: 64 MiB */
	unsigned max_ratio;   /* bytes decompressed / the archive's size, checked
	                       * once 1 MiB is decompressed; 0: 100 */
	unsigned max_depth;   /* archives inside archives; 0: 3 */
	size_t head_bytes;    /* bytes of each entry typed; 0: 4096 */
	unsigned timeout_ms;  /* wall time; 0: 5000 */
	size_t max_document;  /* a document inside kept whole for the caller
	                       * (entry->data) up to this size; 0: 16 MiB */
};

enum attach_status {
	ATTACH_OK = 0,
	ATTACH_E_FORMAT = -1,    /* not an archive we read, or damaged */
	ATTACH_E_ENTRIES = -2,   /* more entries than max_entries */
	ATTACH_E_INFLATED = -3,  /* more than max_inflated bytes */
	ATTACH_E_RATIO = -4,     /* inflates more than max_ratio times its size */
	ATTACH_E_DEPTH = -5,     /* archives nested deeper than max_depth */
	ATTACH_E_TIMEOUT = -6,   /* the wall time ran out */
};
const char *attach_status_name(int status);

struct attach_entry {
	const char *name;     /* as stored: untrusted, may hold "..", '/', any bytes */
	int64_t size;         /* bytes of its content (read, or declared when
	                       * encrypted); -1: unknown */
	const char *mime;     /* by content of its first bytes; "" when encrypted */
	enum attach_category category; /* attach_classify(mime, head, name) */
	bool encrypted;       /* its content needs a password */
	unsigned depth;       /* 1: in the archive given; 2: in one inside it ... */
	const char *head;     /* its first bytes (up to head_bytes) */
	size_t head_len;
	const char *data;     /* its whole content, when it is a document or an
	                       * archive by content (within max_document for a
	                       * document), else NULL: for doctext, in a zipped
	                       * document. Offer both to doctext_kind_of:
	                       * libmagic types many an OOXML file application/zip. */
	size_t data_len;
};

/* A nonzero return stops the listing; attach_list then returns it. */
typedef int attach_entry_cb(void *arg, const struct attach_entry *entry);

struct attach_summary {
	size_t entries;       /* entries listed (directories are not entries) */
	uint64_t inflated;    /* bytes decompressed */
	unsigned depth;       /* deepest nesting met (1: no archive inside;
	                       * 0: data was no archive) */
	bool encrypted;       /* an entry, or the listing itself, needs a password */
	enum attach_category worst; /* the most dangerous category of an entry */
};

/*
 * Lists the archive in data: every entry that is not a directory is
 * handed to cb (NULL: none) in archive order, an archive inside (by its
 * content) is listed right after its own entry with depth + 1. Formats:
 * zip, 7z, rar (4 and 5), tar, cpio, ar, cab, lha, iso9660, xar, and a
 * single file compressed with gzip, bzip2, xz, lzma, lzip, zstd, lz4 or
 * compress(1) (listed as one entry named as its header says, else
 * "data"; a compressed stream that reads as an empty archive too, since
 * gzip'd zeros are an empty tar to libarchive). An archive whose names are
 * encrypted (7z -mhe) lists nothing and sets sum->encrypted. sum (NULL
 * allowed) is filled whatever the result. Meant for an attachment
 * whose category is ATTACH_ARCHIVE (anything else is E_FORMAT). No
 * external program is ever run (filters libarchive would hand to one
 * are left out). Returns an attach_status, or cb's nonzero return.
 */
int attach_list(const char *data, size_t len, const struct attach_limits *limits,
    attach_entry_cb *cb, void *arg, struct attach_summary *sum);
#endif
