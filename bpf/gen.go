package bpf

// The bundled programs. clang is pinned so that the committed objects are
// reproducible; include/ holds <asm/*.h> shims for Debian's multiarch layout.
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" pass pass.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem drop_port dropPort drop_port.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem drop_flow dropFlow drop_flow.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem policy_router policyRouter policy_router.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem lb lb lb.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem mirror mirror mirror.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem redirect_peer redirectPeer redirect_peer.c
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem xdp xdp xdp.c

// Objects used by datapath's tests as user-supplied ELF files. DWARF is
// stripped, as bpf2go does, so the objects do not depend on the checkout's
// path; BTF stays.
//go:generate clang-19 -target bpfel -O2 -g -fdebug-compilation-dir=. -Wall -Werror -Iinclude -c testdata/multi.c -o testdata/multi_bpfel.o
//go:generate llvm-strip-19 -g testdata/multi_bpfel.o
//go:generate clang-19 -target bpfel -O2 -g -fdebug-compilation-dir=. -Wall -Werror -Iinclude -c testdata/bad.c -o testdata/bad_bpfel.o
//go:generate llvm-strip-19 -g testdata/bad_bpfel.o
//go:generate clang-19 -target bpfel -O2 -g -fdebug-compilation-dir=. -Wall -Werror -Iinclude -c testdata/printk.c -o testdata/printk_bpfel.o
//go:generate llvm-strip-19 -g testdata/printk_bpfel.o
