/*
 * What the command line asked for, filled in by core/options.c and read by
 * the machine when it is built (after --preconfig, if given).
 */
#ifndef VIREO_CORE_VM_CONFIG_H
#define VIREO_CORE_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define VM_MAX_SERIAL 4

typedef struct FwCfgOption {
    char *name;
    char *file;             /* exactly one of file/string is set */
    char *string;
    struct FwCfgOption *next;
} FwCfgOption;

typedef struct DeviceOption {
    char *opts;             /* the whole -device/-drive/-netdev/-object argument */
    struct DeviceOption *next;
} DeviceOption;

typedef struct VmConfig {
    char *name;             /* -name */
    char *machine_type;     /* -machine TYPE (NULL: default) */
    char *accel;            /* -accel: "kvm", "qtest" (NULL: choose) */
    uint64_t ram_size;      /* -m, bytes */
    char *ram_memdev;       /* -machine memory-backend= / -numa node,memdev=: RAM's backend */
    unsigned smp_cpus;      /* -smp */
    char *kernel, *initrd, *append;
    char *serial[VM_MAX_SERIAL];    /* -serial specs, NULL when absent */
    int nr_serial;
    bool nodefaults;
    char *rtc_base;         /* -rtc base=utc|localtime|DATE */
    char *rtc_clock;        /* -rtc clock=host|rt|vm */
    FwCfgOption *fw_cfg;    /* -fw_cfg, in order */
    DeviceOption *devices;  /* -device, in order */
    DeviceOption *drives;   /* -drive */
    DeviceOption *netdevs;  /* -netdev */
    DeviceOption *objects;  /* -object (other than iothread) */
    bool start_paused;      /* -S */
    bool preconfig;         /* --preconfig */
} VmConfig;

extern VmConfig vm_config;

#endif
