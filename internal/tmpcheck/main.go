package main

import (
	"encoding/gob"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/go-sdtp/sdtp/gguf"
	"github.com/go-sdtp/sdtp/sdtp/train"
)

func main() {
	files, _ := filepath.Glob(os.Args[1] + "/seq-*.gob")
	var recs []train.Record
	for _, p := range files[:40] {
		f, _ := os.Open(p)
		var r train.Record
		if err := gob.NewDecoder(f).Decode(&r); err != nil {
			panic(err)
		}
		f.Close()
		recs = append(recs, r)
	}
	for s := 0; s < 10; s++ {
		var spPos, spNorm, spNext, spSigned float64
		cnt := 0
		for _, r := range recs {
			n := len(r.Tokens)
			tail := int(math.Ceil(0.1 * float64(n)))
			var abs, pos, norm, next, signed []float32
			for i := 4; i < n-tail; i++ {
				abs = append(abs, float32(math.Abs(float64(r.Saliency[s][i]))))
				signed = append(signed, -r.Saliency[s][i])
				pos = append(pos, float32(i))
				var nn float64
				for j := 0; j < 640; j++ {
					v := float64(gguf.F16ToFloat32(r.Hidden[s][i*640+j]))
					nn += v * v
				}
				norm = append(norm, float32(math.Sqrt(nn)))
				if s < 9 {
					next = append(next, float32(math.Abs(float64(r.Saliency[s+1][i]))))
				}
			}
			spPos += train.Spearman(abs, pos)
			spNorm += train.Spearman(abs, norm)
			spSigned += train.Spearman(abs, signed)
			if s < 9 {
				spNext += train.Spearman(abs, next)
			}
			cnt++
		}
		c := float64(cnt)
		fmt.Printf("stage %d: |sal| vs pos %.3f, vs norm %.3f, vs next stage |sal| %.3f, vs signed %.3f\n", s, spPos/c, spNorm/c, spNext/c, spSigned/c)
	}
}
