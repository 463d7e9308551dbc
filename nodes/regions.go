package node

import (
	"fmt"

	"github.com/adora-rs/adora/transport/shm"
)

// regionMaps are the shared-memory regions a node mapped from one source
// (the daemon, or the sender of a direct edge), by that source's ids.
type regionMaps map[uint32][]byte

// add maps the region a REGION frame announces; its descriptor is the
// next one received on c.
func (rm regionMaps) add(c *shm.Conn, m *shm.Msg) error {
	f, err := c.TakeFile()
	if err != nil {
		return err
	}
	data, err := shm.MapRegion(f, m.Size)
	f.Close()
	if err != nil {
		return fmt.Errorf("map region %d: %w", m.Region, err)
	}
	if old := rm[m.Region]; old != nil {
		shm.Unmap(old)
	}
	rm[m.Region] = data
	return nil
}

// has reports whether region id is mapped.
func (rm regionMaps) has(id uint32) bool { _, ok := rm[id]; return ok }

// remove unmaps region id (REGION_CLOSED).
func (rm regionMaps) remove(id uint32) {
	shm.Unmap(rm[id])
	delete(rm, id)
}

// payload returns the read-only view of a shared-memory INPUT's payload.
func (rm regionMaps) payload(m *shm.Msg) ([]byte, error) {
	data := rm[m.Shm.Region]
	end := m.Shm.Offset + m.Shm.Len
	if data == nil || end > uint64(len(data)) || end < m.Shm.Offset {
		return nil, fmt.Errorf("input %s references unknown region %d", m.ID, m.Shm.Region)
	}
	return data[m.Shm.Offset:end:end], nil
}

// clear unmaps every region.
func (rm regionMaps) clear() {
	for id := range rm {
		rm.remove(id)
	}
}
