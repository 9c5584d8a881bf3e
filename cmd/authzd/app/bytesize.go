package app

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes, written plain or with a binary unit:
// 1048576, 64KiB, 512MiB, 1GiB.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	size   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// UnmarshalText reads a ByteSize.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s, mult := string(text), int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.size
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size: a number of bytes, or of KiB, MiB or GiB (1GiB)", string(text))
	}
	*b = ByteSize(n * mult)
	return nil
}

func (b ByteSize) String() string {
	for _, u := range byteUnits {
		if b > 0 && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
