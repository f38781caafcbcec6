/**
 * Named machine profiles: a cost model (sim/costModel.ts) with the machine it stands for. Every
 * parameter is a physical cost of that machine, with its unit and where the figure comes from;
 * nothing here is a per-policy factor. `docs/fidelity.md` compares what the profiles give with
 * published kernel measurements.
 *
 * What the cost model cannot say (so no profile says it): the engine has one cache-line transfer
 * cost, with no notion of sockets, so a 2-socket profile's `lineTransferNs` is the average of an
 * on-socket and a cross-socket transfer for a line bouncing among threads spread over both
 * sockets (half the hand-offs cross). The engine also treats every hardware thread as a whole
 * CPU (no SMT sharing of a core), and has no memory-bandwidth limit on page zeroing.
 */
import { type CostModel, defaultCostModel } from './costModel.js';
import { defaultCpus } from './engine.js';

/** One machine: its size and the cost of each effect on it. */
export interface MachineProfile {
  readonly name: string;
  readonly summary: string;
  /** Hardware threads: the simulated CPUs a run on this machine gets. */
  readonly cpus: number;
  readonly sockets: number;
  readonly costs: CostModel;
  /** Each parameter's unit and one-line justification, with where the figure comes from. */
  readonly notes: Readonly<Record<keyof CostModel, string>>;
}

const defaultProfile: MachineProfile = {
  name: 'default',
  summary: 'the engine default: a plausible modern x86 server socket, one CPU per simulated thread',
  cpus: defaultCpus,
  sockets: 1,
  costs: defaultCostModel,
  notes: {
    effectNs: 'ns; a few instructions of bookkeeping around each effect (engine default, uncalibrated)',
    atomicNs: 'ns; a LOCK-prefixed RMW on an owned line, ~20 ns taken generously (engine default, uncalibrated)',
    lineTransferNs: 'ns; one on-socket core-to-core line transfer, ~80 ns (engine default, uncalibrated)',
    memAccessNs: 'ns; an L1 hit, ~4 cycles (engine default)',
    wakeupNs: 'ns; wake-up to running of a sleeping task, ~1.5 us (engine default, uncalibrated)',
    spawnNs: 'ns; clone() of a thread until it runs, ~5 us (engine default, uncalibrated)',
    rcuReadNs: 'ns; rcu_read_lock/unlock is a preempt-count change (engine default)',
    syscallNs: 'ns; syscall entry and exit without PTI, ~100 ns (engine default, uncalibrated)',
    faultNs: 'ns; #PF exception, arch handler, page-table walk, ~400 ns (engine default, uncalibrated)',
    pageZeroNs: 'ns; allocating and clearing a 4 KiB page, ~600 ns (engine default, uncalibrated)',
    vmaUpdateNs: 'ns; one VMA tree change with slab allocation and bookkeeping (engine default, uncalibrated)',
    zapPageNs: 'ns; clearing one PTE and freeing its page under TLB batching (engine default, uncalibrated)',
    memoryBusNsPerPage: 'ns per 4 KiB page; 0: no memory bus (engine default, uncalibrated)',
  },
};

/**
 * Haswell-EP, 2 x E5-2690 v3 (12 cores / 24 threads each, 2.6 GHz): Lespinasse's machine for the
 * 2021 speculative page fault figures (24 cores / 48 threads). A 2021 kernel on Haswell runs with
 * PTI (Meltdown), which every user-to-kernel entry pays.
 */
const xeonE52690v3: MachineProfile = {
  name: 'xeon-e5-2690v3',
  summary: "2 x Xeon E5-2690 v3 (Haswell-EP, 24 cores / 48 threads, 2.6 GHz): Lespinasse's 2021 SPF machine",
  cpus: 48,
  sockets: 2,
  costs: Object.freeze({
    effectNs: 2,
    atomicNs: 8,
    lineTransferNs: 85,
    memAccessNs: 2,
    wakeupNs: 2500,
    spawnNs: 10000,
    rcuReadNs: 1,
    syscallNs: 250,
    faultNs: 550,
    pageZeroNs: 550,
    vmaUpdateNs: 300,
    zapPageNs: 40,
    memoryBusNsPerPage: 46,
  }),
  notes: {
    effectNs: 'ns; ~5 instructions of bookkeeping at 2.6 GHz, IPC ~1',
    atomicNs: 'ns; LOCK-prefixed RMW on an owned line ~20 cycles on Haswell (Agner Fog instruction tables) at 2.6 GHz',
    lineTransferNs:
      'ns; average of on-socket (~50 ns, ring) and cross-socket (~120 ns, QPI) core-to-core transfers in published Haswell-EP cache-to-cache measurements (Intel MLC c2c, AnandTech): half the hand-offs of a line bouncing over both sockets cross',
    memAccessNs: 'ns; L1 hit, 4-5 cycles at 2.6 GHz',
    wakeupNs: 'ns; cross-CPU wake-up of a sleeping task until it runs, 2-3 us in schedbench/perf bench sched pipe on servers of the period',
    spawnNs: 'ns; clone(CLONE_VM|CLONE_THREAD) until the child runs, ~10 us (perf bench sched messaging era figures)',
    rcuReadNs: 'ns; non-preemptible RCU: rcu_read_lock is a preempt-count increment',
    syscallNs: 'ns; syscall entry/exit ~70 ns plus the PTI CR3 switches (~150-200 ns on Haswell, the 2018 PTI measurements)',
    faultNs:
      'ns; #PF entry/exit with PTI, do_user_addr_fault, the 4-level walk and PTE install; an anonymous write fault costs ~1 us in all on Haswell with zeroing included',
    pageZeroNs: 'ns; page allocation from the per-CPU lists (~150 ns) plus clear_page_erms of 4 KiB at ~10 GB/s single-core store bandwidth (~400 ns)',
    vmaUpdateNs: 'ns; vm_area_struct slab allocation, rbtree insert/rebalance and vma_merge checks',
    zapPageNs: 'ns; zap_pte_range per present PTE: clear, rmap and counters, batched TLB flush and page free',
    memoryBusNsPerPage:
      'ns per 4 KiB page; 2 sockets x 4 channels DDR4-2133 = 136 GB/s peak, clear_page_erms (rep stosb, no read-for-ownership) sustains about 65% of it: ~89 GB/s, 4096 B / 89 GB/s = 46 ns',
  },
};

/**
 * Ivy Bridge-EP, 2 sockets x 10 cores (20 cores / 40 threads): Bueso's "40-core 2-socket" machine
 * of the 2018 range-lock figures. Ivy Bridge-EP has at most 12 cores a socket, so the 40 are
 * hardware threads. A 2018 kernel: PTI on.
 */
const ivybridge2s40c: MachineProfile = {
  name: 'ivybridge-2s-40c',
  summary: "2-socket Ivy Bridge-EP, 40 hardware threads (~2.5 GHz): Bueso's 2018 range-lock machine",
  cpus: 40,
  sockets: 2,
  costs: Object.freeze({
    effectNs: 2,
    atomicNs: 9,
    lineTransferNs: 90,
    memAccessNs: 2,
    wakeupNs: 3000,
    spawnNs: 12000,
    rcuReadNs: 1,
    syscallNs: 280,
    faultNs: 600,
    pageZeroNs: 600,
    vmaUpdateNs: 350,
    zapPageNs: 45,
    memoryBusNsPerPage: 53,
  }),
  notes: {
    effectNs: 'ns; ~5 instructions of bookkeeping at ~2.5 GHz, IPC ~1',
    atomicNs: 'ns; LOCK-prefixed RMW on an owned line ~20-22 cycles on Ivy Bridge (Agner Fog instruction tables) at ~2.5 GHz',
    lineTransferNs:
      'ns; average of on-socket (~55 ns, ring) and cross-socket (~125 ns, QPI 8 GT/s) core-to-core transfers in published Ivy Bridge-EP cache-to-cache measurements: half the hand-offs cross',
    memAccessNs: 'ns; L1 hit, 4-5 cycles at ~2.5 GHz',
    wakeupNs: 'ns; cross-CPU wake-up of a sleeping task until it runs, ~3 us on servers of the period',
    spawnNs: 'ns; clone() of a thread until it runs, ~12 us',
    rcuReadNs: 'ns; non-preemptible RCU: rcu_read_lock is a preempt-count increment',
    syscallNs: 'ns; syscall entry/exit plus PTI CR3 switches without PCID fast paths (early 2018 PTI measurements)',
    faultNs: 'ns; #PF entry/exit with PTI, the handler, the 4-level walk and PTE install; slightly slower than Haswell per clock',
    pageZeroNs: 'ns; per-CPU page allocation (~150 ns) plus clear_page of 4 KiB at ~9 GB/s single-core store bandwidth (rep stosq, no ERMS tuning)',
    vmaUpdateNs: 'ns; vm_area_struct slab allocation, rbtree insert/rebalance and vma_merge checks',
    zapPageNs: 'ns; zap_pte_range per present PTE: clear, rmap and counters, batched TLB flush and page free',
    memoryBusNsPerPage:
      'ns per 4 KiB page; 2 sockets x 4 channels DDR3-1866 = 119 GB/s peak, about 65% sustained by page clearing: ~78 GB/s, 4096 B / 78 GB/s = 53 ns',
  },
};

/** Ice Lake-SP, 2 sockets x 16 cores (32 cores / 64 threads). Not Meltdown-affected: no PTI. */
const icelake2s64t: MachineProfile = {
  name: 'icelake-2s-64t',
  summary: '2-socket Ice Lake-SP, 32 cores / 64 threads (~2.8 GHz), no PTI',
  cpus: 64,
  sockets: 2,
  costs: Object.freeze({
    effectNs: 2,
    atomicNs: 7,
    lineTransferNs: 85,
    memAccessNs: 2,
    wakeupNs: 2000,
    spawnNs: 8000,
    rcuReadNs: 1,
    syscallNs: 100,
    faultNs: 350,
    pageZeroNs: 400,
    vmaUpdateNs: 250,
    zapPageNs: 30,
    memoryBusNsPerPage: 15,
  }),
  notes: {
    effectNs: 'ns; ~5 instructions of bookkeeping at ~2.8 GHz, IPC ~1.5',
    atomicNs: 'ns; LOCK-prefixed RMW on an owned line ~18-20 cycles on Sunny Cove (Agner Fog, uops.info) at ~2.8 GHz',
    lineTransferNs:
      'ns; average of on-socket (~50 ns, mesh) and cross-socket (~120 ns, UPI) core-to-core transfers in published Ice Lake-SP cache-to-cache measurements (AnandTech Xeon 8380 c2c): half the hand-offs cross',
    memAccessNs: 'ns; L1 hit, 5 cycles at ~2.8 GHz',
    wakeupNs: 'ns; cross-CPU wake-up of a sleeping task until it runs, ~2 us',
    spawnNs: 'ns; clone() of a thread until it runs, ~8 us',
    rcuReadNs: 'ns; non-preemptible RCU: rcu_read_lock is a preempt-count increment',
    syscallNs: 'ns; syscall entry/exit with no PTI (Ice Lake is not Meltdown-affected) and eIBRS, ~100 ns',
    faultNs: 'ns; #PF entry/exit without PTI, the handler, the walk and PTE install',
    pageZeroNs: 'ns; per-CPU page allocation (~100 ns) plus clear_page_erms (fast short rep stos) of 4 KiB at ~14 GB/s single-core store bandwidth',
    vmaUpdateNs: 'ns; VMA slab allocation and tree insert with its bookkeeping',
    zapPageNs: 'ns; zap_pte_range per present PTE: clear, rmap and counters, batched TLB flush and page free',
    memoryBusNsPerPage:
      'ns per 4 KiB page; 2 sockets x 8 channels DDR4-3200 = 410 GB/s peak, about 65% sustained by page clearing: ~266 GB/s, 4096 B / 266 GB/s = 15 ns',
  },
};

const PROFILES: readonly MachineProfile[] = Object.freeze([defaultProfile, xeonE52690v3, ivybridge2s40c, icelake2s64t]);

/** The names `profileByName` knows, in the order reports list them. */
export function profileNames(): string[] {
  return PROFILES.map((p) => p.name);
}

/** A machine profile by name; a RangeError naming the known ones for any other. */
export function profileByName(name: string): MachineProfile {
  const p = PROFILES.find((x) => x.name === name);
  if (p === undefined) throw new RangeError(`unknown machine profile '${name}' (known: ${profileNames().join(', ')})`);
  return p;
}
