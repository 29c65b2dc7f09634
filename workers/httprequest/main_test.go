package httprequest_test

import (
	"testing"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }
