package command

import (
	"fmt"
	"io"
	"text/tabwriter"

	"asymptote.dev/asymptote/scaling"
)

type identifyJSON struct {
	Names      []string        `json:"names"`
	Sigma      jnum            `json:"sigma"`
	SE         []jnum          `json:"wald_se"`
	Condition  jnum            `json:"condition"`
	Directions []directionJSON `json:"directions"`
	Level      jnum            `json:"level"`
	// Profile maps each free parameter to its profile interval (natural
	// units; null ends were not reached).
	Profile   map[string][]jnum          `json:"profile"`
	Influence []influenceJSON            `json:"drop_one"`
	Losses    map[string]map[string]jnum `json:"by_loss"`
	order     []string
	lossOrder []string
}

type directionJSON struct {
	Vector []jnum `json:"vector"`
	SE     jnum   `json:"se"`
	Pinned bool   `json:"pinned"`
	Words  string `json:"words"`
}

type influenceJSON struct {
	Param  string `json:"param"`
	Row    int    `json:"row"`
	Change jnum   `json:"change"`
}

func newIdentifyJSON(f *scaling.Fit, id *scaling.Identifiability) *identifyJSON {
	j := &identifyJSON{Names: id.Names, Sigma: jnum(id.Sigma), Condition: jnum(id.Condition), Level: jnum(id.Level),
		Profile: map[string][]jnum{}, Losses: map[string]map[string]jnum{}}
	for _, v := range id.SE {
		j.SE = append(j.SE, jnum(v))
	}
	for _, d := range id.Directions {
		dj := directionJSON{SE: jnum(d.SE), Pinned: d.Pinned, Words: d.Words}
		for _, v := range d.Vector {
			dj.Vector = append(dj.Vector, jnum(v))
		}
		j.Directions = append(j.Directions, dj)
	}
	for _, p := range id.Profile {
		j.Profile[p.Name] = jivl(p.Interval)
		j.order = append(j.order, p.Name)
	}
	for _, in := range id.Influence {
		j.Influence = append(j.Influence, influenceJSON{Param: in.Name, Row: in.Row, Change: jnum(in.Change)})
	}
	for _, l := range id.Losses {
		m := map[string]jnum{}
		for k, name := range f.Names {
			if !f.Fixed[k] {
				m[name] = jnum(l.Params[k])
			}
		}
		j.Losses[l.Loss] = m
		j.lossOrder = append(j.lossOrder, l.Loss)
	}
	return j
}

// printIdentify prints what the data pin down: the directions in words, the
// profile intervals and the sensitivity to the loss and to each point.
func (r *fitReport) printIdentify(w io.Writer) {
	id := r.Identify
	if id == nil {
		return
	}
	fmt.Fprintf(w, "\nidentifiability (Fisher information of the log residuals, σ %s, condition number %s):\n", num(float64(id.Sigma)), num(float64(id.Condition)))
	for _, d := range id.Directions {
		mark := "pinned"
		if !d.Pinned {
			mark = "NOT PINNED"
		}
		fmt.Fprintf(w, "  [%s] %s\n", mark, d.Words)
	}
	pct := int(float64(id.Level)*100 + 0.5)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := fmt.Sprintf("PARAM\tPROFILE %d%% CI\tDROP-ONE MAX CHANGE (ROW)", pct)
	for _, l := range id.lossOrder {
		head += "\t" + l
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, head)
	for _, name := range id.order {
		line := fmt.Sprintf("%s\t%s\t-", name, ivl(id.Profile[name]))
		for _, in := range id.Influence {
			if in.Param == name {
				line = fmt.Sprintf("%s\t%s\t%s (%d)", name, ivl(id.Profile[name]), num(float64(in.Change)), in.Row)
			}
		}
		for _, l := range id.lossOrder {
			line += "\t" + num(float64(id.Losses[l][name]))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Fprintln(w, "(profile: Gaussian log residuals, F bound; drop-one change: relative for positive parameters; loss columns: refits from this optimum)")
}
