/*
 * msgtype.h - frame types: which control message (src/proto/pstore.proto)
 * a frame carries.  A reply has the request's type | XPORT_REPLY_BIT, or is
 * MSG_ERROR carrying Pstore__Error.
 */
#ifndef PSTORE_MSGTYPE_H
#define PSTORE_MSGTYPE_H

enum xport_msg_type {
	MSG_ERROR = 1, /* Error */
	/* vendor -> FAT */
	MSG_VENDOR_REGISTER = 10,  /* VendorHello -> VendorHelloReply */
	MSG_VENDOR_HEARTBEAT = 11, /* VendorHello -> VendorHelloReply */
	/* client -> FAT */
	MSG_VOLUME_CREATE = 20,	 /* VolumeInfo -> VolumeInfo */
	MSG_VOLUME_GET = 21,	 /* VolumeGet -> VolumeInfo */
	MSG_VOLUME_LIST = 22,	 /* Empty -> VolumeList */
	MSG_ALLOC = 23,		 /* AllocRequest -> AllocReply */
	MSG_LEASE_RENEW = 24,	 /* LeaseRenew -> AllocReply */
	MSG_COMMIT = 25,	 /* CommitRequest -> CommitReply */
	MSG_META_LIST = 26,	 /* ListRequest -> MetaListReply */
	MSG_CHUNK_LIST = 27,	 /* ListRequest -> ChunkListReply */
	MSG_VENDOR_LIST = 28,	 /* Empty -> VendorListReply */
	MSG_STATFS = 29,	 /* Empty -> StatfsReply */
	MSG_REPORT_BAD = 30,	 /* BadReplica -> Empty */
	MSG_FAT_STATUS = 31,	 /* Empty -> FatStatusReply (FAT cluster state) */
	MSG_WRITER_ACQUIRE = 32, /* WriterLease -> WriterLeaseReply (acquire or renew) */
	MSG_WRITER_RELEASE = 33, /* WriterLease -> WriterLeaseReply */
	MSG_VOLUME_KEY_SET = 34, /* VolumeKeySet -> VolumeInfo (new wrapped volume key) */
	/* client or vendor -> vendor */
	MSG_CHUNK_PUT = 40, /* ChunkPut + data -> ChunkPutReply */
	MSG_CHUNK_GET = 41, /* ChunkGet -> ChunkGetReply + data */
	MSG_RECEIPTS = 42,  /* ReceiptBatch -> Empty */
	MSG_PING = 43,	    /* Empty -> PingReply (RTT probe; cookie for UDP probes) */
};

#endif
