/*
 * Image creation and amendment options (-o) of vireo-img: one table per
 * image format and for the host-file protocol, which drives parsing, the
 * "-o help" listings and the option echo of the "Formatting ..." line, so
 * the three can never disagree about what vireo-img accepts.
 */
#ifndef VIREO_TOOLS_IMG_OPTS_H
#define VIREO_TOOLS_IMG_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"

typedef enum ImgOptType { IMG_OPT_STR, IMG_OPT_BOOL, IMG_OPT_NUM, IMG_OPT_SIZE } ImgOptType;

typedef struct ImgOptDesc {
    const char *name;
    ImgOptType type;
    const char *help;
    const char *def;        /* echoed on the Formatting line when not given; may be NULL */
} ImgOptDesc;

#define IMG_OPTS_MAX 32

/*
 * The options of one command: a format's list, then the protocol's options
 * the format does not have itself.  Values are the strings given, the last
 * one winning; numbers and sizes are parsed too.
 */
typedef struct ImgOptSet {
    int n;
    const ImgOptDesc *desc[IMG_OPTS_MAX];
    char *str[IMG_OPTS_MAX];
    uint64_t num[IMG_OPTS_MAX];
} ImgOptSet;

/* -o ARG checks done as each -o is read: "Invalid option list: ARG". */
bool img_opts_list_valid(const char *arg);
/* Join -o arguments with commas, as one list (*acc may be NULL). */
void img_opts_accumulate(char **acc, const char *arg);
/* Whether the list asks for help: an element "help" or "?" with no value. */
bool img_opts_help_requested(const char *list);

/*
 * The creation options of @fmt, with the host-file protocol's when
 * @with_protocol.  Returns false with qemu-img's message printed (after
 * "@errfile: " when not NULL) when the format is unknown or cannot be created.
 */
bool img_create_optset(const char *fmt, bool with_protocol, const char *errfile,
                       ImgOptSet *set);
/* The options `amend` can change for @fmt; false (message printed) if none. */
bool img_amend_optset(const char *fmt, ImgOptSet *set);
void img_optset_free(ImgOptSet *set);

/*
 * Parse "a=b,c=d" (",," is a literal comma) into @set, checking names and
 * types.  Returns false with *errp set (no file name prefix).
 */
bool img_optset_parse(ImgOptSet *set, const char *list, Error **errp);
/*
 * The same for amend's set of @fmt: an option only creation takes is refused
 * with that reason, as qemu-img words it.
 */
bool img_amend_optset_parse(ImgOptSet *set, const char *fmt, const char *list, Error **errp);
/* Set one option as if given with -o; false with *errp set if it is not valid. */
bool img_optset_set(ImgOptSet *set, const char *name, const char *value, Error **errp);
/* The value given for @name, or NULL. */
const char *img_optset_get(const ImgOptSet *set, const char *name);

/* "-o help" for create and convert: @filename may be NULL.  Returns the exit status. */
int img_print_create_help(const char *filename, const char *fmt);
/* "-o help" for amend.  Returns the exit status. */
int img_print_amend_help(const char *fmt);

/* The options part of "Formatting 'FILE', fmt=FMT ...": given values and defaults. */
void img_optset_print(const ImgOptSet *set);

/*
 * Turn the parsed options into creation options: the checks qemu-img makes
 * once the image is being formatted (values of compat, preallocation,
 * compression_type, encryption).  Strings stay owned by @set.
 */
bool img_optset_to_create(const ImgOptSet *set, BlockCreateOptions *o, Error **errp);

/* --object: "secret,id=ID,data=..." (the only object type vireo-img uses). */
bool img_add_object(const char *spec);
/* tools/img-object.c: the same with the error returned; whether secret @id exists. */
bool img_object_add(const char *spec, Error **errp);
bool img_secret_exists(const char *id);
/* The bytes of secret @id (*@len of them), or NULL when there is none. */
const uint8_t *img_secret_data(const char *id, size_t *len);

#endif
