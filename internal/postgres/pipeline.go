package postgres

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
)

// pipeConn is a writer's own connection to the audit database, driven at the
// protocol level so that one goroutine can send the next batch while another
// waits for the previous one's commit: Postgres runs what arrives on one
// connection in order, so batches sent back to back are chained in the order
// they were sent, and the next one is already there when a commit returns.
//
// A batch is one prepared statement (the rows and the chain head's move, see
// insertRowsIfHead) in an implicit transaction: Bind, Execute, Flush, Sync.
// Postgres commits at the Sync, so there is no BEGIN or COMMIT of its own; the
// Flush makes it send the statement's result before it commits, which splits
// a batch's time between its statement and its commit at no extra round trip.
type pipeConn struct {
	pg    *pgconn.PgConn // kept after the hijack for its cancel request only
	conn  net.Conn
	fe    *pgproto3.Frontend
	stmt  *pgconn.StatementDescription
	types *pgtype.Map
	eqb   pgx.ExtendedQueryBuilder
}

// insertIfHeadName names insertRowsIfHead prepared on a writer's connection.
const insertIfHeadName = "authzd_audit_insert_if_head"

// dialPipe opens a connection with the pool's settings (synchronous_commit
// included) and prepares the chained insert on it.
func dialPipe(ctx context.Context, db *DB) (*pipeConn, error) {
	c, err := pgx.ConnectConfig(ctx, db.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	sd, err := c.Prepare(ctx, insertIfHeadName, insertRowsIfHead)
	if err != nil {
		_ = c.Close(ctx)
		return nil, fmt.Errorf("prepare the audit insert: %w", err)
	}
	pg := c.PgConn()
	hc, err := pg.Hijack()
	if err != nil {
		_ = c.Close(ctx)
		return nil, err
	}
	return &pipeConn{pg: pg, conn: hc.Conn, fe: hc.Frontend, stmt: sd, types: pgtype.NewMap()}, nil
}

// send writes one batch: the chained insert of rows moving the head from
// (fromSeq, fromHash) to (toSeq, toHash). Only the writer's goroutine sends.
func (p *pipeConn) send(args []any, deadline time.Time) error {
	if err := p.eqb.Build(p.types, p.stmt, args); err != nil {
		return fmt.Errorf("encode the audit rows: %w", err)
	}
	p.fe.SendBind(&pgproto3.Bind{PreparedStatement: p.stmt.Name, ParameterFormatCodes: p.eqb.ParamFormats,
		Parameters: p.eqb.ParamValues, ResultFormatCodes: p.eqb.ResultFormats})
	p.fe.SendExecute(&pgproto3.Execute{})
	p.fe.Send(&pgproto3.Flush{})
	p.fe.SendSync(&pgproto3.Sync{})
	if err := p.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	return p.fe.Flush()
}

// result is what Postgres answered to one batch.
type result struct {
	rows      int64     // rows the statement inserted
	statement time.Time // when its result arrived
	committed time.Time // when the commit's ReadyForQuery arrived
	pgErr     error     // the statement's error (a *pgconn.PgError); the transaction rolled back
}

// receive reads the answer to the oldest batch sent. Only the writer's reader
// goroutine receives. An error means the connection is unusable and the
// outcome of this and every later batch on it is unknown.
func (p *pipeConn) receive(deadline time.Time) (result, error) {
	var r result
	if err := p.conn.SetReadDeadline(deadline); err != nil {
		return r, err
	}
	for {
		msg, err := p.fe.Receive()
		if err != nil {
			return r, err
		}
		switch m := msg.(type) {
		case *pgproto3.BindComplete, *pgproto3.NoticeResponse, *pgproto3.ParameterStatus, *pgproto3.NotificationResponse:
		case *pgproto3.CommandComplete:
			r.statement = time.Now()
			r.rows = pgconn.NewCommandTag(string(m.CommandTag)).RowsAffected()
		case *pgproto3.ErrorResponse:
			r.statement = time.Now()
			r.pgErr = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			r.committed = time.Now()
			if r.pgErr == nil && m.TxStatus != 'I' {
				return r, fmt.Errorf("audit connection left in transaction status %q", m.TxStatus)
			}
			return r, nil
		default:
			return r, fmt.Errorf("unexpected message %T on the audit connection", msg)
		}
	}
}

// close shuts the connection; when a batch may still run on it (a timeout),
// it first asks Postgres to cancel that, so no orphaned statement holds the
// chain head's lock until Postgres notices the closed socket.
func (p *pipeConn) close(cancelRunning bool) {
	if cancelRunning {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.pg.CancelRequest(ctx)
		cancel()
	}
	_ = p.conn.Close()
}
