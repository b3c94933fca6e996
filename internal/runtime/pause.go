package runtime

import (
	"encoding/binary"
	"fmt"
	goruntime "runtime"

	"github.com/skiff-sh/skiff/internal/image"
)

// PauseImage is the sandbox image skiff configures in containerd and imports
// at start; it is built here, so no registry is ever needed.
const PauseImage = "skiff.local/pause:1"

// Pause returns the pause image: one static executable of a few hundred
// bytes that ignores SIGCHLD (so the kernel reaps orphans when it is PID 1 of
// a shared PID namespace), exits 0 on SIGTERM or SIGINT and otherwise sleeps
// in pause(2) forever.
func Pause() (*image.Builder, error) {
	if goruntime.GOARCH != "amd64" {
		return nil, fmt.Errorf("pause image: no pause program for %s yet", goruntime.GOARCH)
	}
	b := image.New(PauseImage)
	b.AddFile("/pause", 0o755, pauseELF())
	b.Config = image.Config{Entrypoint: []string{"/pause"}}
	return b, nil
}

// Linux x86-64 constants the pause program uses.
const (
	loadAddr      = 0x400000
	ehdrSize      = 64
	phdrSize      = 56
	sysRtSigact   = 13
	sysPause      = 34
	sysExitGroup  = 231
	sigINT        = 2
	sigTERM       = 15
	sigCHLD       = 17
	sigIgn        = 1
	saRestorer    = 0x04000000
	sigactionSize = 32 // handler, flags, restorer, mask: four 8-byte words
)

// asm is a tiny x86-64 assembler for the pause program: bytes plus the
// RIP-relative references to patch once the data's address is known.
type asm struct {
	code   []byte
	fixups []fixup
}

type fixup struct {
	at     int // offset of the 32-bit displacement
	target func() int
}

func (a *asm) emit(b ...byte) { a.code = append(a.code, b...) }

func (a *asm) movEAX(v uint32) { a.emit(0xb8); a.imm32(v) }
func (a *asm) movEDI(v uint32) { a.emit(0xbf); a.imm32(v) }
func (a *asm) imm32(v uint32)  { a.code = binary.LittleEndian.AppendUint32(a.code, v) }
func (a *asm) syscall()        { a.emit(0x0f, 0x05) }

// leaRSI loads the address of a later label into rsi.
func (a *asm) leaRSI(target func() int) {
	a.emit(0x48, 0x8d, 0x35)
	a.fixups = append(a.fixups, fixup{at: len(a.code), target: target})
	a.imm32(0)
}

// sigaction emits rt_sigaction(sig, act, NULL, 8).
func (a *asm) sigaction(sig uint32, act func() int) {
	a.movEAX(sysRtSigact)
	a.movEDI(sig)
	a.leaRSI(act)
	a.emit(0x31, 0xd2)                         // xor edx, edx
	a.emit(0x41, 0xba, 0x08, 0x00, 0x00, 0x00) // mov r10d, 8
	a.syscall()
}

func pauseELF() []byte {
	var a asm
	var exitAt, ignAt, termAt int
	a.sigaction(sigCHLD, func() int { return ignAt })
	a.sigaction(sigTERM, func() int { return termAt })
	a.sigaction(sigINT, func() int { return termAt })
	loop := len(a.code)
	a.movEAX(sysPause)
	a.syscall()
	a.emit(0xeb, byte(int8(loop-(len(a.code)+2)))) // jmp loop
	exitAt = len(a.code)
	a.movEAX(sysExitGroup)
	a.emit(0x31, 0xff) // xor edi, edi
	a.syscall()
	base := uint64(loadAddr + ehdrSize + phdrSize)
	word := func(v uint64) { a.code = binary.LittleEndian.AppendUint64(a.code, v) }
	ignAt = len(a.code)
	word(sigIgn)
	word(0)
	word(0)
	word(0)
	termAt = len(a.code)
	word(base + uint64(exitAt)) // handler: exit_group(0)
	word(saRestorer)            // x86-64 refuses handlers without a restorer
	word(base + uint64(exitAt)) // never returned to
	word(0)
	for _, f := range a.fixups {
		rel := f.target() - (f.at + 4)
		binary.LittleEndian.PutUint32(a.code[f.at:], uint32(int32(rel)))
	}
	return append(elfHeaders(len(a.code)), a.code...)
}

// elfHeaders returns an ELF64 executable header and one PT_LOAD program
// header mapping the whole file read+execute at loadAddr.
func elfHeaders(codeLen int) []byte {
	total := uint64(ehdrSize + phdrSize + codeLen)
	h := make([]byte, 0, ehdrSize+phdrSize)
	h = append(h, 0x7f, 'E', 'L', 'F', 2, 1, 1, 0) // 64-bit, little-endian, version 1, SysV
	h = append(h, make([]byte, 8)...)
	le := binary.LittleEndian
	h = le.AppendUint16(h, 2)    // ET_EXEC
	h = le.AppendUint16(h, 0x3e) // EM_X86_64
	h = le.AppendUint32(h, 1)
	h = le.AppendUint64(h, loadAddr+ehdrSize+phdrSize) // entry
	h = le.AppendUint64(h, ehdrSize)                   // program headers offset
	h = le.AppendUint64(h, 0)                          // no section headers
	h = le.AppendUint32(h, 0)                          // flags
	h = le.AppendUint16(h, ehdrSize)
	h = le.AppendUint16(h, phdrSize)
	h = le.AppendUint16(h, 1) // one program header
	h = le.AppendUint16(h, 0) // section header size
	h = le.AppendUint16(h, 0)
	h = le.AppendUint16(h, 0)
	h = le.AppendUint32(h, 1) // PT_LOAD
	h = le.AppendUint32(h, 5) // PF_R|PF_X
	h = le.AppendUint64(h, 0)
	h = le.AppendUint64(h, loadAddr)
	h = le.AppendUint64(h, loadAddr)
	h = le.AppendUint64(h, total)
	h = le.AppendUint64(h, total)
	h = le.AppendUint64(h, 0x1000)
	return h
}
