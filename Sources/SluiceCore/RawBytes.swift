// Big-endian loads and stores at byte offsets of raw packet memory.
//
// Every caller has already proved `offset + width <= length` against the real packet length
// (the parser checks each header once, up front); these helpers do no bounds checking of their
// own. Loads are unaligned: packet headers sit at any offset after VLAN tags and IP options.

extension UnsafeRawPointer {
    @inlinable @inline(__always)
    public func loadBE8(_ offset: Int) -> UInt8 {
        load(fromByteOffset: offset, as: UInt8.self)
    }
    @inlinable @inline(__always)
    public func loadBE16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inlinable @inline(__always)
    public func loadBE32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inlinable @inline(__always)
    public func loadBE64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

extension UnsafeMutableRawPointer {
    @inlinable @inline(__always)
    public func loadBE8(_ offset: Int) -> UInt8 { UnsafeRawPointer(self).loadBE8(offset) }
    @inlinable @inline(__always)
    public func loadBE16(_ offset: Int) -> UInt16 { UnsafeRawPointer(self).loadBE16(offset) }
    @inlinable @inline(__always)
    public func loadBE32(_ offset: Int) -> UInt32 { UnsafeRawPointer(self).loadBE32(offset) }
    @inlinable @inline(__always)
    public func loadBE64(_ offset: Int) -> UInt64 { UnsafeRawPointer(self).loadBE64(offset) }

    @inlinable @inline(__always)
    public func storeBE8(_ value: UInt8, _ offset: Int) {
        storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
    }
    @inlinable @inline(__always)
    public func storeBE16(_ value: UInt16, _ offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inlinable @inline(__always)
    public func storeBE32(_ value: UInt32, _ offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
    @inlinable @inline(__always)
    public func storeBE64(_ value: UInt64, _ offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }
}
