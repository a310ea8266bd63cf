/*
 * Giving up what start-up needed: inherited descriptors, the root
 * directory, the user, and the ability to gain privileges again.
 * -runas USER|UID:GID and -chroot DIR (QEMU 7.2), -run-with user=,chroot=
 * (QEMU 9).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sandbox/sandbox-internal.h"
#include "util/osdep.h"

const OptParam run_with_params[] = {
    { "user", OPT_STRING, "user name or UID:GID to run as once start-up is done" },
    { "chroot", OPT_STRING, "directory to chroot to once start-up is done" },
    { NULL },
};

/* The user is looked up now: /etc/passwd may not exist inside the chroot. */
static uid_t run_uid;
static gid_t run_gid;
static gid_t run_groups[64];    /* supplementary groups, looked up now too */
static int run_nr_groups;

static bool parse_user(const char *user, Error **errp)
{
    unsigned long uid, gid;
    char *end;
    errno = 0;
    uid = strtoul(user, &end, 10);
    if (isdigit((unsigned char)user[0]) && *end == ':' && isdigit((unsigned char)end[1])) {
        gid = strtoul(end + 1, &end, 10);
        if (*end || errno || uid >= (uid_t)-1 || gid >= (gid_t)-1) {
            error_setg(errp, "invalid user '%s'", user);
            return false;
        }
        run_uid = (uid_t)uid;
        run_gid = (gid_t)gid;
        run_nr_groups = 0;      /* UID:GID: no supplementary groups */
    } else {
        struct passwd *pw = getpwnam(user);
        if (!pw) {
            error_setg(errp, "User \"%s\" doesn't exist", user);
            return false;
        }
        run_uid = pw->pw_uid;
        run_gid = pw->pw_gid;
        run_nr_groups = (int)ARRAY_SIZE(run_groups);
        if (getgrouplist(user, run_gid, run_groups, &run_nr_groups) < 0) {
            run_groups[0] = run_gid;    /* too many to keep: the primary group only */
            run_nr_groups = 1;
        }
    }
    free(sandbox_config.user);
    sandbox_config.user = xstrdup(user);
    return true;
}

bool sandbox_opt_runas(const char *arg, Error **errp)
{
    return parse_user(arg, errp);
}

bool sandbox_opt_chroot(const char *arg, Error **errp)
{
    free(sandbox_config.chroot_dir);
    sandbox_config.chroot_dir = xstrdup(arg);
    return true;
}

bool sandbox_opt_run_with(const char *arg, Error **errp)
{
    KeyValList kv;
    if (!keyval_parse(arg, NULL, run_with_params, &kv, errp)) {
        return false;
    }
    const char *user = keyval_get(&kv, "user");
    const char *dir = keyval_get(&kv, "chroot");
    bool ok = !user || parse_user(user, errp);
    if (ok && dir) {
        sandbox_opt_chroot(dir, errp);
    }
    keyval_free(&kv);
    return ok;
}

/* ---- inherited descriptors ---- */

/* Is fd in the list of numbers at q ("3", "3:4:5"), up to the next non-digit? */
static bool list_has_fd(const char *q, int fd)
{
    while (isdigit((unsigned char)*q)) {
        char *end;
        long v = strtol(q, &end, 10);
        if (v == fd) {
            return true;
        }
        q = *end == ':' ? end + 1 : end;
    }
    return false;
}

/*
 * Does word hand over descriptor fd through fd=, fds=, vhostfd= or
 * vhostfds=, in key=value form or in the JSON form ("fd": "3" or "fd": 3)
 * management tools use for -netdev, -chardev and -device?
 */
static bool names_fd(const char *word, int fd)
{
    static const char *const keys[] = { "fd", "fds", "vhostfd", "vhostfds" };
    for (const char *p = word; *p; p++) {
        bool json = *p == '"';
        if (!json && p != word && p[-1] != ',') {
            continue;
        }
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
            const char *key = p + json;
            size_t n = strlen(keys[k]);
            if (strncmp(key, keys[k], n) != 0) {
                continue;
            }
            const char *q = key + n;
            if (json) {
                if (*q++ != '"') {
                    continue;
                }
                while (*q == ' ') {
                    q++;
                }
                if (*q++ != ':') {
                    continue;
                }
                while (*q == ' ') {
                    q++;
                }
                q += *q == '"';
            } else if (*q++ != '=') {
                continue;
            }
            if (list_has_fd(q, fd)) {
                return true;
            }
        }
    }
    return false;
}

static bool handed_over(int fd, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (names_fd(argv[i], fd)) {
            return true;
        }
    }
    return false;
}

/* What was open when main() began: the only candidates for closing. */
static int inherited[1024];
static int nr_inherited;

void sandbox_note_inherited_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return;     /* no /proc: nothing to enumerate with, keep everything */
    }
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) && nr_inherited < (int)ARRAY_SIZE(inherited)) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd > STDERR_FILENO && fd != self) {
            inherited[nr_inherited++] = fd;
        }
    }
    closedir(d);
}

/*
 * A descriptor a parent leaked (a terminal, another VM's socket, a
 * privileged file) would stay reachable after the user drop; only the
 * ones the command line names are kept. Option parsing may already have
 * opened descriptors of its own, hence the list made before it.
 */
void sandbox_close_inherited_fds(int argc, char **argv)
{
    if (!sandbox_config.enable && !sandbox_config.user && !sandbox_config.chroot_dir) {
        return;
    }
    for (int i = 0; i < nr_inherited; i++) {
        if (!handed_over(inherited[i], argc, argv)) {
            close(inherited[i]);
        }
    }
    nr_inherited = 0;
}

/* ---- chroot and the user ---- */

static bool enter_chroot(const char *dir, Error **errp)
{
    if (chroot(dir) < 0) {
        error_setg_errno(errp, errno, "cannot chroot to '%s'", dir);
        return false;
    }
    if (chdir("/") < 0) {
        error_setg_errno(errp, errno, "cannot enter the new root directory");
        return false;
    }
    return true;
}

static bool become_user(const SandboxConfig *c, Error **errp)
{
    if (setgid(run_gid) < 0) {
        error_setg_errno(errp, errno, "cannot set the group id to %u", (unsigned)run_gid);
        return false;
    }
    if (setgroups((size_t)run_nr_groups, run_groups) < 0) {
        error_setg_errno(errp, errno, "cannot set the supplementary groups of '%s'", c->user);
        return false;
    }
    if (setuid(run_uid) < 0) {
        error_setg_errno(errp, errno, "cannot set the user id to %u", (unsigned)run_uid);
        return false;
    }
    /* The drop is only real if root cannot be had back. */
    if (run_uid != 0 && setuid(0) == 0) {
        error_setg(errp, "the user id could be set back to root after dropping it");
        return false;
    }
    return true;
}

bool sandbox_drop_privileges(const SandboxConfig *c, Error **errp)
{
    if (c->chroot_dir && !enter_chroot(c->chroot_dir, errp)) {
        return false;
    }
    if (c->user && !become_user(c, errp)) {
        return false;
    }
    /* No setuid binary and no file capability can give this process more. */
    if ((c->enable || c->user || c->chroot_dir) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        error_setg_errno(errp, errno, "cannot set no_new_privs");
        return false;
    }
    return true;
}
