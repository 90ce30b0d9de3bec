package nn

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"asymptote.dev/asymptote/plugins/sdk"
)

// Learner is what one trained model carries from one optimizer step to the
// next: its tensors (values and AdamW moments), its optimizer's step
// count, its random generator (initialisation, data order, dropout) and
// its position in the shuffled data. Saving all of it is what makes a
// resumed run the uninterrupted one, bit for bit.
type Learner struct {
	Tensors []*Tensor
	Opt     *AdamW
	Src     *rand.PCG
	Epochs  *Epochs
}

// Checkpoints makes a Loop save and resume checkpoints through the SDK's
// request: one every Every steps (0: only when the host asks with
// CheckpointWanted), and never after the last step unless the run may be
// continued.
type Checkpoints struct {
	Request *sdk.TrialRequest
	Every   int
	// Learners are the models the loop trains, in a fixed order.
	Learners []Learner
	// Continue says that a longer run may continue from this one's
	// checkpoints (its steps up to any point do not depend on how many
	// there are in all, as under a constant learning rate): a promotion
	// that continues resumes a longer run from a shorter one's last
	// checkpoint. A run that may be continued also saves a checkpoint
	// after its last step when that falls on Every. StepExamples is the
	// examples a full step trains over all learners: a continued run
	// refuses a checkpoint taken after a partial last batch, which a
	// longer run would not have trained.
	Continue     bool
	StepExamples int
}

// A checkpoint directory holds two files: loop.json, the loop's own
// counters, and learners.bin, every learner's state in the binary layout
// that writeLearners describes.
const (
	loopFile     = "loop.json"
	learnersFile = "learners.bin"
	// learnersMagic opens learners.bin; the trailing digit is the layout's
	// version.
	learnersMagic = "asymptote-nn-learners-1\n"
)

// loopState is loop.json. Floats keep their exact bits through JSON
// (encoding/json writes the shortest representation that reads back to
// the same float64).
type loopState struct {
	Step     int     `json:"step"`
	Steps    int     `json:"steps"`
	Learners int     `json:"learners"`
	LossSum  float64 `json:"loss_sum"` // training loss summed since the last report
	LossN    int     `json:"loss_n"`
	Seen     float64 `json:"seen"` // examples seen, over all members
	// TrainLoss is the last reported train_loss, for a run resumed after
	// its last step.
	TrainLoss float64 `json:"train_loss,omitempty"`
}

// due reports whether a checkpoint is to be taken after step (from 1) of
// steps: never when the host keeps none.
func (c *Checkpoints) due(step, steps int) bool {
	if c == nil || step > steps || !c.Request.Checkpoints() {
		return false
	}
	if step == steps {
		return c.Continue && c.Every > 0 && step%c.Every == 0
	}
	return c.Request.CheckpointWanted() || c.Every > 0 && step%c.Every == 0
}

// save writes a checkpoint of st and the learners into a new directory
// from the request and returns it, or "" when the host keeps none.
func (c *Checkpoints) save(st loopState) (string, error) {
	dir, err := c.Request.NewCheckpoint(int64(st.Step))
	if errors.Is(err, sdk.ErrNoCheckpoints) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	st.Learners = len(c.Learners)
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, loopFile), b, 0o600); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := writeFile(filepath.Join(dir, learnersFile), func(w io.Writer) error { return writeLearners(w, c.Learners) }); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	return dir, nil
}

// restore reads the checkpoint the request resumes from into the learners
// and returns the loop's counters.
func (c *Checkpoints) restore(steps int) (loopState, error) {
	res := c.Request.Resume
	var st loopState
	b, err := os.ReadFile(filepath.Join(res.Dir, loopFile))
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("resume: %s is not a checkpoint of this method: %w", loopFile, err)
	}
	switch {
	case int64(st.Step) != res.Step:
		return st, fmt.Errorf("resume: the checkpoint holds step %d, but the host resumes from step %d", st.Step, res.Step)
	case st.Steps != steps && !c.Continue:
		return st, fmt.Errorf("resume: the checkpoint is of a run of %d steps, this one has %d: it was taken with other parameters (a run continued into a larger budget needs a schedule that does not depend on it, such as schedule: constant)", st.Steps, steps)
	case st.Steps != steps && st.Step >= steps:
		return st, fmt.Errorf("resume: the checkpoint is after step %d, past this run's %d steps: only a longer run continues a shorter one", st.Step, steps)
	case st.Steps != steps && c.StepExamples > 0 && st.Seen != float64(st.Step*c.StepExamples):
		return st, fmt.Errorf("resume: the checkpoint's run ended on a partial batch (%g examples in %d steps of %d): a longer run would not have trained it; make tokens a multiple of batch", st.Seen, st.Step, c.StepExamples)
	case st.Learners != len(c.Learners):
		return st, fmt.Errorf("resume: the checkpoint holds %d members, this run has %d: it was taken with other parameters", st.Learners, len(c.Learners))
	case st.Step < 1 || st.Step > steps:
		return st, fmt.Errorf("resume: checkpoint step %d is outside 1…%d", st.Step, steps)
	}
	f, err := os.Open(filepath.Join(res.Dir, learnersFile))
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	if err := readLearners(bufio.NewReader(f), c.Learners); err != nil {
		return st, fmt.Errorf("resume: %s: %w", learnersFile, err)
	}
	return st, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	return errors.Join(write(w), w.Flush(), f.Close())
}

// writeLearners writes, after learnersMagic, for each learner in
// little-endian order: its generator's state (uint32 length, then
// math/rand/v2's PCG encoding), the optimizer's step count (int64), the
// position in the current epoch and the epoch's order (int64, then an
// int64 length and int32 indices), then its tensors (uint32 count; each an
// int64 length and its values, first moments and second moments as
// float64 bits).
func writeLearners(w io.Writer, ls []Learner) error {
	e := encoder{w: w}
	e.bytes([]byte(learnersMagic))
	for _, l := range ls {
		src, err := l.Src.MarshalBinary()
		if err != nil {
			return err
		}
		e.u32(uint32(len(src)))
		e.bytes(src)
		e.u64(uint64(l.Opt.t))
		e.u64(uint64(l.Epochs.next))
		e.u64(uint64(len(l.Epochs.order)))
		e.int32s(l.Epochs.order)
		e.u32(uint32(len(l.Tensors)))
		for _, t := range l.Tensors {
			e.u64(uint64(len(t.W)))
			e.floats(t.W)
			e.floats(t.m)
			e.floats(t.v)
		}
	}
	return e.err
}

// readLearners is the inverse of writeLearners; it fails when the sizes
// in r are not those of ls (a checkpoint of another model) or r is
// truncated or longer.
func readLearners(r io.Reader, ls []Learner) error {
	d := decoder{r: r}
	if magic := d.bytes(len(learnersMagic)); d.err == nil && string(magic) != learnersMagic {
		return fmt.Errorf("not a learners file (it starts %q)", magic)
	}
	for k, l := range ls {
		src := d.bytes(int(d.u32()))
		t := d.u64()
		next, n := d.u64(), d.u64()
		if d.err != nil {
			return d.err
		}
		if n != uint64(len(l.Epochs.order)) || next > n {
			return fmt.Errorf("member %d: the data order has %d positions (at %d), this run's has %d: the checkpoint was taken with other parameters", k, n, next, len(l.Epochs.order))
		}
		d.int32s(l.Epochs.order)
		if nt := d.u32(); d.err == nil && int(nt) != len(l.Tensors) {
			return fmt.Errorf("member %d: %d tensors, this model has %d: the checkpoint was taken with other parameters", k, nt, len(l.Tensors))
		}
		for i, tn := range l.Tensors {
			if size := d.u64(); d.err == nil && size != uint64(len(tn.W)) {
				return fmt.Errorf("member %d, tensor %d: %d values, this model has %d: the checkpoint was taken with other parameters", k, i, size, len(tn.W))
			}
			d.floats(tn.W)
			d.floats(tn.m)
			d.floats(tn.v)
		}
		if d.err != nil {
			return d.err
		}
		if err := l.Src.UnmarshalBinary(src); err != nil {
			return fmt.Errorf("member %d: generator state: %w", k, err)
		}
		l.Opt.t = int(t)
		l.Epochs.next = int(next)
	}
	if d.err != nil {
		return d.err
	}
	if n, _ := io.Copy(io.Discard, r); n > 0 {
		return fmt.Errorf("%d bytes after the last member: the checkpoint was taken with other parameters", n)
	}
	return nil
}

// chunk is the number of bytes the encoder and decoder convert at a time.
const chunk = 8 << 10

// encoder writes little-endian values and keeps the first error.
type encoder struct {
	w   io.Writer
	buf [chunk]byte
	err error
}

func (e *encoder) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.bytes(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], v)
	e.bytes(e.buf[:8])
}

func (e *encoder) floats(vs []float64) {
	for len(vs) > 0 && e.err == nil {
		n := min(len(vs), chunk/8)
		for i, v := range vs[:n] {
			binary.LittleEndian.PutUint64(e.buf[8*i:], math.Float64bits(v))
		}
		e.bytes(e.buf[:8*n])
		vs = vs[n:]
	}
}

func (e *encoder) int32s(vs []int32) {
	for len(vs) > 0 && e.err == nil {
		n := min(len(vs), chunk/4)
		for i, v := range vs[:n] {
			binary.LittleEndian.PutUint32(e.buf[4*i:], uint32(v))
		}
		e.bytes(e.buf[:4*n])
		vs = vs[n:]
	}
}

// decoder reads what encoder writes; a short read is io.ErrUnexpectedEOF.
type decoder struct {
	r   io.Reader
	buf [chunk]byte
	err error
}

func (d *decoder) fill(b []byte) {
	if d.err != nil {
		return
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.err = fmt.Errorf("truncated: %w", err)
	}
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n > 1<<20 {
		if d.err == nil {
			d.err = fmt.Errorf("a field of %d bytes is too long", n)
		}
		return nil
	}
	b := make([]byte, n)
	d.fill(b)
	return b
}

func (d *decoder) u32() uint32 {
	d.fill(d.buf[:4])
	return binary.LittleEndian.Uint32(d.buf[:4])
}

func (d *decoder) u64() uint64 {
	d.fill(d.buf[:8])
	return binary.LittleEndian.Uint64(d.buf[:8])
}

func (d *decoder) floats(vs []float64) {
	for len(vs) > 0 && d.err == nil {
		n := min(len(vs), chunk/8)
		d.fill(d.buf[:8*n])
		for i := range vs[:n] {
			vs[i] = math.Float64frombits(binary.LittleEndian.Uint64(d.buf[8*i:]))
		}
		vs = vs[n:]
	}
}

func (d *decoder) int32s(vs []int32) {
	for len(vs) > 0 && d.err == nil {
		n := min(len(vs), chunk/4)
		d.fill(d.buf[:4*n])
		for i := range vs[:n] {
			vs[i] = int32(binary.LittleEndian.Uint32(d.buf[4*i:]))
		}
		vs = vs[n:]
	}
}
