// The built-in conversion plan: what `vmalock run` runs with no plan, and what `vmalock plan init`
// writes for a user to edit. It follows the design (Dufour and Glisse, LPC 2019): part 1 keeps
// mmap_sem and adds the VMA range locks, with an opt-in experiment for one process; part 2
// converts arch code, filesystems, drivers and huge pages, then removes mmap_sem. Kept as a string
// so it ships inside the compiled package; its comments are the user's first documentation.

/** The file name `vmalock plan init` writes when given none. */
export const DEFAULT_PLAN_FILE = 'vmalock-plan.yaml';

/** The built-in plan, as YAML with comments. */
export const DEFAULT_PLAN_YAML = `# A vmalock conversion plan: take mmap_sem out of the memory manager in stages, the way the kernel
# would have to (Dufour and Glisse, "Killing the mmap_sem's contention", LPC 2019).
#
#   vmalock plan validate ${DEFAULT_PLAN_FILE}    check it (errors name file:line:col and the field)
#   vmalock run ${DEFAULT_PLAN_FILE}              run it: a table per phase, findings, gate verdicts
#
# The format is in docs/plans.md; \`vmalock plan schema\` prints a JSON Schema for editors.

name: staged-conversion

# The one seed every random choice of the run derives from: same seed, same report.
seed: 1

# The simulated machine: each process is one mm_struct with its threads, running a workload, with
# the subsystems it uses attached (built-in ones by name, your own as a path to a .js file).
# A subsystem runs its legacy variant, which leans on mmap_sem, until a phase converts it.
processes:
  # A web server: many threads mapping and unmapping buffers and files (ebizzy-like), serving
  # files through the page cache with async I/O.
  - name: web
    workload: { name: ebizzy }
    threads: 4
    cpus: 4
    subsystems: [vdso, pagecache, aioring, thp]

  # A JVM: a garbage collector that mprotects its heap regions all the time, with protection keys
  # on its heap, userfaultfd for concurrent compaction, arch bookkeeping of unmapped ranges, and
  # its heap on huge pages (khugepaged collapses them).
  - name: jvm
    workload: { name: jvm-gc }
    threads: 4
    cpus: 4
    subsystems: [pkeys, archunmap, userfaultfd, khugepaged, thp]

  # A GPU service: page-fault heavy (pft), talking to a GPU driver (gem), mirroring its memory to
  # the device (hmm) and answering requests over binder.
  - name: gpu
    workload: { name: pft }
    threads: 4
    cpus: 4
    subsystems: [vdso, binder, hmm, gem]

# Throughput gates compare each process to its throughput in this phase.
baseline: baseline

# The phases run in order. Each names the lock policy of the processes that opt in (all of them
# unless \`optIn\` lists some: the others stay on their policy of the previous phase), the
# subsystems it converts (on top of what earlier phases converted: arch, fs, driver, hugepage and
# all stand for every attached subsystem of that kind), and its gates. A failed blocking gate marks
# the later phases blocked (\`vmalock run --keep-going\` runs them anyway); a gate with
# \`blocking: false\` is reported and blocks nothing.
phases:
  # Today's kernel: everything under mmap_sem. The reference every later phase is measured against.
  - name: baseline
    policy: global-rwsem
    gates:
      - { kind: no-findings, schedules: 20 }

  # Part 1: keep mmap_sem exactly as it is and take the VMA range locks as well, so the new
  # protocol runs in core mm with no new concurrency. Nothing may break; taking both locks costs
  # a little throughput.
  - name: part1-hybrid
    policy: hybrid
    gates:
      - { kind: no-findings, schedules: 20 }
      - { kind: throughput, process: web, atLeastPercentOfBaseline: 50 }
      - { kind: throughput, process: jvm, atLeastPercentOfBaseline: 50 }
      - { kind: throughput, process: gpu, atLeastPercentOfBaseline: 50 }

  # The experiment: mmap_sem deactivated for one process only, with every subsystem still legacy.
  # The legacy page cache, async I/O and huge page code relied on mmap_sem, so this breaks: the
  # report shows where and why (each finding with the command that replays it and its timeline).
  # The gate is not blocking: the experiment is there to be read, not to pass.
  - name: opt-in-web
    policy: vma-range
    optIn: [web]
    gates:
      - { name: experiment, kind: no-findings, schedules: 20, blocking: false }

  # Part 2, step by step: convert a family of subsystems (each does its own locking or revalidates
  # what it looked up), with mmap_sem still held everywhere. The gates check that the converted
  # code holds up next to the range locks (no lock-order inversion, no broken invariant).
  - name: convert-arch
    policy: hybrid
    converted: [arch]
    gates:
      - { kind: no-findings, schedules: 20 }

  - name: convert-fs
    policy: hybrid
    converted: [fs]
    gates:
      - { kind: no-findings, schedules: 20 }

  - name: convert-drivers
    policy: hybrid
    converted: [driver]
    gates:
      - { kind: no-findings, schedules: 20 }

  - name: convert-hugepages
    policy: hybrid
    converted: [hugepage]
    gates:
      - { kind: no-findings, schedules: 20 }

  # Everything is converted: remove mmap_sem for every process. The VMA range locks alone protect
  # the address space, so faults and mappings on different ranges run in parallel: the fault-heavy
  # jvm and gpu gain (about 2x over the baseline here). ebizzy's web server maps and unmaps all
  # the time, and every change under vma-range locks its area, unifies it under a new lock and
  # fills holes with dummies: the model puts it at about 60% of the baseline with 4 threads, so
  # its gate asks only that it does not collapse. Raise the bars to what your conversion must keep.
  - name: remove-mmap-sem
    policy: vma-range
    converted: [all]
    gates:
      - { kind: no-findings, schedules: 20 }
      - { kind: throughput, process: web, atLeastPercentOfBaseline: 50 }
      - { kind: throughput, process: jvm, atLeastPercentOfBaseline: 100 }
      - { kind: throughput, process: gpu, atLeastPercentOfBaseline: 100 }
`;
