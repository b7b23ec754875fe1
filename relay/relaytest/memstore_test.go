package relaytest_test

import (
	"testing"

	"github.com/wprelay/wprelay/relay/relaytest"
)

func TestMemStore(t *testing.T) {
	relaytest.TestStore(t, func(t *testing.T) relaytest.Store { return relaytest.NewMemStore() })
}
