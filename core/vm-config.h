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
    bool ram_size_given;    /* -m was given (the none board has RAM only then) */
    uint8_t uuid[16];       /* -uuid, in the order it is written; zeros if none */
    char *cpu_model;        /* -cpu model name (NULL: host) */
    bool nographic;         /* -nographic (told to firmware through fw_cfg) */
    bool boot_menu;         /* -boot menu=on */
    int32_t boot_splash_time;       /* -boot splash-time= in ms, -1 when not given */
    int32_t boot_reboot_timeout;    /* -boot reboot-timeout= in ms, -1: never retry */
    char *ram_memdev;       /* -machine memory-backend= / -numa node,memdev=: RAM's backend */
    unsigned smp_cpus;      /* -smp */
    char *kernel, *initrd, *append;
    char *serial[VM_MAX_SERIAL];    /* -serial specs, NULL when absent */
    int nr_serial;
    bool nodefaults;
    bool no_acpi;           /* -no-acpi, -machine acpi=off */
    char *rtc_base;         /* -rtc base=utc|localtime|DATE */
    char *rtc_clock;        /* -rtc clock=host|rt|vm */
    FwCfgOption *fw_cfg;    /* -fw_cfg, in order */
    DeviceOption *devices;  /* -device, in order */
    DeviceOption *drives;   /* -drive */
    DeviceOption *netdevs;  /* -netdev */
    DeviceOption *objects;  /* -object (other than iothread) */
    bool start_paused;      /* -S */
    bool mem_lock;          /* -overcommit mem-lock=on: guest RAM locked */
    bool preconfig;         /* --preconfig */
} VmConfig;

extern VmConfig vm_config;

#endif
