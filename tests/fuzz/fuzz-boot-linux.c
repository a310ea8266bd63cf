/*
 * libFuzzer target for the direct Linux boot loader (machine/boot-linux.c):
 * the input is the kernel file a user passes with -kernel, probed as a
 * bzImage (setup header, boot protocol, load flags, sizes) or as an ELF
 * vmlinux with a PVH entry note (program headers, notes), then loaded into
 * 32 MiB of guest RAM with an initrd and a command line, which fills the
 * zero page or the PVH start_info, the e820 map and the boot page tables.
 *
 * The first 4 input bytes are not the kernel: bytes 0-1 give the initrd
 * size in units of 64 bytes (0: no initrd; at most 4 MiB), bytes 2-3 the
 * command line length (modulo 4 KiB). Kernel and initrd live in memfds.
 *
 * Checks besides the sanitizers: when loading succeeds, the boot argument
 * (zero page or start_info) and the stack lie in guest RAM, and so does a
 * bzImage's entry point (a PVH note may name any entry: a bad one only
 * crashes the guest), the mode matches the kernel's format, the command
 * line is in RAM where the kernel is told it is, and loading again (a
 * reset) succeeds too; a load that fails says why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "machine/boot-linux.h"
#include "machine/layout.h"
#include "memory/guest-memory.h"
#include "util/osdep.h"

#define RAM_SIZE    (32u << 20)
#define PREFIX      4
#define MAX_KERNEL  (1u << 20)

static GuestMemory mem;
static int kernel_fd = -1, initrd_fd = -1;
static char kernel_path[64], initrd_path[64];
static char cmdline[4097];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-boot-linux: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Error *err = NULL;
    if (!guest_memory_create_private(&mem, RAM_SIZE, LOWMEM_LIMIT, &err)) {
        fprintf(stderr, "fuzz-boot-linux: %s\n", error_get_pretty(err));
        exit(1);
    }
    kernel_fd = memfd_create("vireo-fuzz-kernel", MFD_CLOEXEC);
    initrd_fd = memfd_create("vireo-fuzz-initrd", MFD_CLOEXEC);
    if (kernel_fd < 0 || initrd_fd < 0) {
        perror("fuzz-boot-linux: memfd_create");
        exit(1);
    }
    snprintf(kernel_path, sizeof(kernel_path), "/proc/self/fd/%d", kernel_fd);
    snprintf(initrd_path, sizeof(initrd_path), "/proc/self/fd/%d", initrd_fd);
    for (size_t i = 0; i < sizeof(cmdline) - 1; i++) {
        cmdline[i] = "console=ttyS0 quiet "[i % 20];
    }
    return 0;
}

static bool put_file(int fd, const uint8_t *data, size_t len)
{
    if (ftruncate(fd, 0) < 0) {
        return false;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, data + done, len - done, (off_t)done);
        if (n <= 0) {
            return false;
        }
        done += (size_t)n;
    }
    return true;
}

static bool in_ram(uint64_t gpa, uint64_t len)
{
    return gmem_ptr(&mem, gpa, len) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PREFIX || size > PREFIX + MAX_KERNEL) {
        return -1;
    }
    uint64_t initrd_size = (uint64_t)(data[0] | data[1] << 8) * 64;
    size_t cmdline_len = (size_t)(data[2] | data[3] << 8) % 4096;
    if (!put_file(kernel_fd, data + PREFIX, size - PREFIX) ||
        ftruncate(initrd_fd, (off_t)initrd_size) < 0) {
        fail("cannot write the kernel or initrd memfd");
    }
    char saved = cmdline[cmdline_len];
    cmdline[cmdline_len] = '\0';

    Error *err = NULL;
    LinuxLoader *l = linux_loader_open(kernel_path, initrd_size ? initrd_path : NULL,
                                       cmdline, &err);
    if (l) {
        BootEntry entry;
        bool loaded = linux_loader_load(l, &mem, ACPI_TABLES_ADDR, &entry, &err);
        if (!loaded && !err) {
            fail("a load failed without an error message");
        }
        if (loaded) {
            bool elf = size >= PREFIX + 4 && !memcmp(data + PREFIX, "\x7f" "ELF", 4);
            if (entry.mode != (elf ? BOOT_ENTRY_PVH32 : BOOT_ENTRY_LINUX64)) {
                fail("entry mode does not match the kernel format");
            }
            if ((!elf && !in_ram(entry.entry, 1)) || !in_ram(entry.arg, 1) ||
                !in_ram(entry.stack - 16, 16)) {
                fail("entry point, boot argument or stack outside guest RAM");
            }
            char *cl = gmem_ptr(&mem, BOOT_CMDLINE_ADDR, cmdline_len + 1);
            if (!cl || memcmp(cl, cmdline, cmdline_len + 1)) {
                fail("the command line is not where the kernel is told it is");
            }
        }
        /* A reset loads everything again from the open files. */
        if (loaded && !linux_loader_load(l, &mem, 0, &(BootEntry){ 0 }, &err)) {
            fail("a second load failed where the first succeeded");
        }
        linux_loader_close(l);
    }
    error_free(err);
    cmdline[cmdline_len] = saved;
    return 0;
}
