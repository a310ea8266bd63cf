/*
 * vireo-img internals shared by its subcommand files.
 */
#ifndef VIREO_TOOLS_IMG_H
#define VIREO_TOOLS_IMG_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "block/block-int.h"

/*
 * The name errors start with: argv[0]'s last component, as qemu-img does,
 * so vireo-img run as "qemu-img" (a link) words its errors as qemu-img.
 */
extern const char *img_progname;

/* "PROGNAME: " then @fmt on stderr; @fmt carries its own newline. */
void img_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* img_error() with @err's message, then free @err. */
void img_report_err(Error *err);

/* "    (12.50/100%)\r" when @on; the caller ends the line at 100%. */
void img_progress(bool on, uint64_t done, uint64_t total);

/*
 * After getopt_long() (optstring starting with ':') returned '?' or ':':
 * report the option as qemu-img does and return the exit status, 1.
 */
int img_bad_option(int c, int argc, char **argv);

/*
 * Whether @name is a block driver name QEMU knows: a backing format is
 * recorded for whoever opens the chain, so it may name a driver vireo lacks.
 */
bool img_format_name_known(const char *name);

/*
 * Walk the backing chain of @filename one image at a time and, when a file
 * comes back, report "Backing file '...' creates an infinite loop." as
 * qemu-img info --backing-chain does before it prints anything.
 */
bool img_chain_has_loop(const char *filename, const char *fmt);

/*
 * A size as qemu-img takes it on the command line: decimal or 0x hex, an
 * optional fraction, an optional b/k/K/M/G/T/P/E suffix; at most INT64_MAX.
 * Returns 0, -EINVAL (not a size) or -ERANGE (too large).
 */
int img_parse_size(const char *str, uint64_t *out);

/*
 * --image-opts: open the image the option list @spec describes ("driver=FMT,
 * file.filename=PATH,l2-cache-size=1M"), through the block layer's one open
 * path for option sets (blk_open_options, shared with json: names); errors
 * are reported as qemu-img words them and NULL returned.
 */
BlockImage *img_open_image_opts(const char *spec, unsigned flags);
/* img_open() or, when @image_opts, img_open_image_opts() (@fmt then unused). */
BlockImage *img_open_image(const char *name, const char *fmt, bool image_opts,
                           unsigned flags);

/* Print @obj the way qemu-img does: 4-space indentation, "key": value. */
void img_json_print(json_object *obj);

/* "64 MiB", "196 KiB", "1.5 GiB": three significant digits, binary units. */
char *img_size_str(uint64_t bytes);

/* Long-option codes shared by the subcommand files. */
enum { OPT_OUTPUT = 256, OPT_BACKING_CHAIN, OPT_ADD, OPT_REMOVE, OPT_CLEAR, OPT_ENABLE,
       OPT_DISABLE, OPT_MERGE, OPT_SIZE, OPT_IMAGE_OPTS, OPT_SHRINK, OPT_OBJECT,
       OPT_FORCE_SHARE, OPT_FORCE };

/* After the options: exactly one operand, the image (info, check, map). */
bool img_one_image_name(int argc);
/* --output=human|json */
bool img_parse_output(const char *arg, bool *json);
/*
 * Close an image a command modified, reporting @err when @ret < 0, or the
 * close's own error when the command succeeded.  Returns 0 or -1.
 */
int img_finish_modification(BlockImage *img, int ret, Error *err);

/* The snapshot list as "info" and "snapshot -l" print it. */
void img_print_snapshot_table(const BlockFormatInfo *fi);

int img_create(int argc, char **argv);
int img_info(int argc, char **argv);
int img_snapshot(int argc, char **argv);
int img_bitmap(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_rebase(int argc, char **argv);
int img_amend(int argc, char **argv);
int img_dd(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_bench(int argc, char **argv);
int img_measure(int argc, char **argv);

/* Open helpers that report errors as qemu-img does and return NULL. */
BlockImage *img_open(const char *filename, const char *fmt, unsigned flags);

#endif
