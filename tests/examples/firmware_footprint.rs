//! Footprint and cost of the Cortex-M4 firmware, for docs/performance.md:
//! flash (text + rodata + data image) and RAM (data + bss + measured stack
//! high-water mark) from the ELF and a RAM dump, and instructions per
//! operation measured deterministically under QEMU `-icount shift=0`.
//!
//! `cargo run -p tee-tests --example firmware_footprint`
//!
//! With `-icount shift=0` QEMU advances virtual time 1 ns per instruction;
//! SysTick runs at the 25 MHz core clock of virtual time, so one tick is 40
//! instructions. The firmware logs the ticks of its power-on self-test (one
//! signature) and of every request it answers.
#![allow(clippy::print_stdout)]

use tee_tests::footprint::{
    EMULATED_FLASH, FLASH_BUDGET, INSTRUCTIONS_PER_TICK, RAM_BUDGET, measure,
};

fn main() {
    let f = measure();
    let image = tee_tests::qemu::image();
    let (flash, text, rodata, static_ram, stack_hwm) =
        (f.flash, f.text, f.rodata, f.static_ram, f.stack_hwm);
    let (costs, sign_costs) = (f.costs, f.sign_costs);
    let kib = |b: u64| format!("{:.1} KiB", b as f64 / 1024.0);
    println!("\n### Footprint (`{}`)\n", image.display());
    println!("| | bytes | | budget |\n|---|---:|---:|---:|");
    println!(
        "| flash: .vector_table + .text + .rodata + .data image | {flash} | {} | {} |",
        kib(flash),
        kib(FLASH_BUDGET)
    );
    println!("| — of which .text | {text} | {} | |", kib(text));
    println!("| — of which .rodata | {rodata} | {} | |", kib(rodata));
    println!(
        "| RAM: .data + .bss (without the emulated flash) | {static_ram} | {} | |",
        kib(static_ram)
    );
    println!("| RAM: stack high-water mark (measured) | {stack_hwm} | {} | |", kib(stack_hwm));
    println!(
        "| **RAM total** | {} | {} | {} |",
        static_ram + stack_hwm,
        kib(static_ram + stack_hwm),
        kib(RAM_BUDGET)
    );
    let boot = f.stack_after.first().map_or(0, |(_, h)| *h);
    if let Some((what, _)) = f.stack_after.iter().find(|(_, h)| *h == stack_hwm) {
        println!("| — stack set by: {what} (after boot and the first request: {boot}) | | | |");
    }
    println!(
        "| emulated NOR flash (.bss; on-chip flash on a real MCU) | {EMULATED_FLASH} | {} | |",
        kib(EMULATED_FLASH)
    );
    println!(
        "\n### Cost (QEMU -icount shift=0: 1 SysTick tick = {INSTRUCTIONS_PER_TICK} instructions)\n"
    );
    println!("| operation | instructions |\n|---|---:|");
    for (what, t) in &costs {
        println!("| {what} | {} |", t * INSTRUCTIONS_PER_TICK);
    }
    println!(
        "\n| Sign request (decode, policy, durable counter commit, sign) | action | instructions | outcome |\n|---|---|---:|---|"
    );
    for (kind, label, t, outcome) in &sign_costs {
        println!("| {} | {label} | {} | {outcome} |", kind.name(), t * INSTRUCTIONS_PER_TICK);
    }
}
